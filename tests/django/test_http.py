"""A real gunicorn (two forked workers, --preload) over HTTP: log in, call the API,
revoke, refused by every worker; the stateless class kept current across workers by the
Redis bus each worker starts after the fork."""

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

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django.settings",
        "SJTI_TEST_DJANGO_DIR": str(tmp_path),
        "SJTI_TEST_DJANGO_REDIS": redis_url,
    }
    env.pop("SJTI_TEST_DJANGO_PG", None)
    _manage(env, "migrate", "-v0")
    _manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model as m;"
        "m().objects.create_user('alice', password='pw-alice')",
    )
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable, "-m", "gunicorn", "tests.django.wsgi:application",
            "--workers", "2", "--preload", "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning",
        ],
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/api/me", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        yield base
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.service
def test_gunicorn_login_api_revoke(server: str) -> None:
    """Over HTTP, through two forked workers: the token works on both, logout-all refuses
    it on both at once, and the stateless endpoint (cache + Redis bus) agrees."""
    with httpx.Client(base_url=server, timeout=10) as http:
        pair = http.post("/api/auth/token/", json={"username": "alice", "password": "pw-alice"})
        assert pair.status_code == 200, pair.text
        access = pair.json()["access"]
        auth = {"Authorization": f"Bearer {access}"}
        for _ in range(20):  # new connections: both workers answer some of them
            with httpx.Client(base_url=server, timeout=10) as one:
                assert one.get("/api/me-stateless", headers=auth).status_code == 200
            assert http.get("/api/me", headers=auth).status_code == 200
        out = http.post("/api/auth/logout-all/", headers=auth)
        assert out.status_code == 200
        for _ in range(20):
            with httpx.Client(base_url=server, timeout=10) as one:
                refused = one.get("/api/me-stateless", headers=auth)
                assert refused.status_code == 401
                assert refused.json()["error_description"] == "revoked"
                assert one.get("/api/me", headers=auth).status_code == 401
        challenge = http.get("/api/me", headers=auth).headers["WWW-Authenticate"]
        assert challenge == 'Bearer realm="api", error="invalid_token", error_description="revoked"'
