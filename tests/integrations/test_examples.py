"""The examples, started as real processes on free ports and exercised over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sjti import Issuer, SigningKey, UserKey

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Example:
    """One example process and its base URL."""

    def __init__(self, script: str, log: Path, **env: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log
        environ = {**os.environ, "PORT": self.url.rsplit(":", 1)[1], **env}
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
                [sys.executable, str(EXAMPLES / script)], env=environ, stdout=out, stderr=out
            )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.log.name} exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"{self.log.name} did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("example-logs")


@pytest.fixture(scope="module")
def apps(logs: Path) -> Iterator[dict[str, Example]]:
    """The FastAPI and Flask examples and the internal service, started in parallel."""
    started = {
        "fastapi": Example("fastapi_app.py", logs / "fastapi.log"),
        "flask": Example("flask_app.py", logs / "flask.log"),
        "internal": Example("internal_service.py", logs / "internal.log"),
    }
    try:
        for example in started.values():
            example.wait_ready()
        yield started
    finally:
        for example in started.values():
            example.stop()


def login(base: str, user: str) -> str:
    response = httpx.post(f"{base}/login", params={"user": user})
    assert response.status_code == 200
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("name", ["fastapi", "flask"])
def test_example_login_me_logout_then_refused(apps: dict[str, Example], name: str) -> None:
    """login -> /me -> logout -> the same token is refused with error="invalid_token"."""
    base = apps[name].url
    token = login(base, "alice")
    assert httpx.get(f"{base}/me", headers=bearer(token)).json()["sub"] == "alice"
    assert httpx.post(f"{base}/logout", headers=bearer(token)).status_code == 204
    refused = httpx.get(f"{base}/me", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="example", error="invalid_token", error_description="revoked"'
    )


def test_fastapi_example_middleware_is_boundary_only(apps: dict[str, Example]) -> None:
    """/hello sits behind the middleware alone: a revoked token still passes there."""
    base = apps["fastapi"].url
    token = login(base, "bob")
    httpx.post(f"{base}/logout", headers=bearer(token))
    assert httpx.get(f"{base}/hello", headers=bearer(token)).json() == {"hello": "bob"}
    assert httpx.get(f"{base}/hello").status_code == 401


@pytest.fixture(scope="module")
def proxies(apps: dict[str, Example], logs: Path) -> Iterator[dict[str, Example]]:
    """Two boundary proxies fed only the internal service's JWKS file: forwarding or not."""
    jwks = logs / "jwks.json"
    jwks.write_bytes(httpx.get(f"{apps['internal'].url}/.well-known/jwks.json").content)
    started = {
        "forwarding": Example("boundary_proxy.py", logs / "proxy-fwd.log",
                              SJTI_JWKS_FILE=str(jwks), SJTI_UPSTREAM=apps["internal"].url),
        "answering": Example("boundary_proxy.py", logs / "proxy.log", SJTI_JWKS_FILE=str(jwks)),
    }  # fmt: skip
    try:
        for example in started.values():
            example.wait_ready()
        yield started
    finally:
        for example in started.values():
            example.stop()


def test_jwks_holds_no_private_key(apps: dict[str, Example]) -> None:
    """The boundary gets public keys only: it can verify tokens but never mint them."""
    (key,) = httpx.get(f"{apps['internal'].url}/.well-known/jwks.json").json()["keys"]
    assert (key["kty"], key["crv"], "d" in key) == ("OKP", "Ed25519", False)


def test_boundary_proxy_answers_claims_and_refuses_forgeries(
    apps: dict[str, Example], proxies: dict[str, Example]
) -> None:
    """With only the JWKS, the proxy accepts the issuer's tokens and drops forged ones."""
    base = proxies["answering"].url
    token = login(apps["internal"].url, "carol")
    answer = httpx.get(f"{base}/anything", headers=bearer(token)).json()
    assert (answer["layer"], answer["claims"]["sub"]) == ("boundary", "carol")
    forger = Issuer(SigningKey.generate("EdDSA"), issuer="http://127.0.0.1/internal",
                    audience="internal-api")  # fmt: skip
    forged = httpx.get(
        f"{base}/anything", headers=bearer(forger.issue("carol", UserKey.generate()))
    )
    assert forged.status_code == 401
    assert forged.json() == {"error": "invalid_token", "error_description": "unknown_kid"}
    assert httpx.get(f"{base}/anything").headers["www-authenticate"] == "Bearer"


def test_revoked_token_passes_the_proxy_and_is_refused_by_the_internal_service(
    apps: dict[str, Example], proxies: dict[str, Example]
) -> None:
    """The two layers split across processes: revocation is enforced where the keys live."""
    internal, proxy = apps["internal"].url, proxies["forwarding"].url
    token = login(internal, "dave")
    forwarded = httpx.get(f"{proxy}/me", headers=bearer(token))
    assert forwarded.json() == {"sub": "dave", "layer": "user"}
    assert httpx.post(f"{internal}/logout", headers=bearer(token)).status_code == 204
    refused = httpx.get(f"{proxy}/me", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="internal", error="invalid_token", error_description="revoked"'
    )
