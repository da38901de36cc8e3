"""Start the real service (``python -m sjti.cli serve``) on a free port and talk HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN = "root"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One ``sjti serve`` process; ``url`` once /healthz answered."""

    def __init__(
        self, workdir: Path, env: dict[str, str], *, workers: int = 1, wait_ready: bool = True
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        self.workdir = workdir
        full_env = {
            **os.environ,
            "SJTI_ISSUER": "https://auth.test",
            "SJTI_AUDIENCE": "api.test",
            "SJTI_LOGIN_MAX_FAILURES_PER_IP": "100000",
            "SJTI_REGISTRATIONS_PER_IP": "100000",
            **env,
        }
        self.env = full_env
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [sys.executable, "-m", "sjti.cli", "serve", "--port", str(self.port),
                 "--workers", str(workers)],
                cwd=workdir,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait(ready=wait_ready)

    def _wait(self, seconds: float = 60, *, ready: bool = True) -> None:
        """Until /readyz answers 200 (``ready=False``: until /healthz does)."""
        probe = "/readyz" if ready else "/healthz"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}{probe}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready")

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``sjti <args>`` with this server's settings, in its directory."""
        return subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "sjti.cli", *args],
            input=stdin,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def make_admin(self, name: str = ADMIN, password: str = PASSWORD) -> None:
        """The first admin, the only way there is: ``sjti users create NAME --admin``."""
        done = self.cli("users", "create", name, "--admin", "--password-stdin", stdin=password)
        assert done.returncode == 0 or "is taken" in done.stderr, done.stderr

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)


def register(client: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/users", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def login(
    client: httpx.Client, username: str, password: str = PASSWORD, **headers: str
) -> dict[str, str]:
    response = client.post(
        "/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token})


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}
