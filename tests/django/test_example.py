"""examples/django runs as its README says: migrate, runserver, then the curl session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .test_http import _free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django"


@pytest.fixture
def runserver(tmp_path: Path) -> Iterator[str]:
    """The example copied to a temporary directory, migrated, served by runserver."""
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("db.sqlite3*", "*.json"))
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=project, env=env, check=True, timeout=120)  # noqa: S603
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=project, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/api/me/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("runserver did not start")
        yield base
    finally:
        process.terminate()
        process.wait(10)


def test_example_readme_session(runserver: str) -> None:
    """The README's curl session: token pair, /api/me/, logout-all, then 401 revoked."""
    with httpx.Client(base_url=runserver, timeout=10) as http:
        pair = http.post(
            "/api/auth/token/", json={"username": "alice", "password": "alice-password"}
        )
        assert pair.status_code == 200, pair.text
        auth = {"Authorization": f"Bearer {pair.json()['access']}"}
        me = http.get("/api/me/", headers=auth)
        assert (me.status_code, me.json()["username"]) == (200, "alice")
        assert http.post("/api/auth/logout-all/", headers=auth).status_code == 200
        refused = http.get("/api/me/", headers=auth)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == (
            'Bearer realm="example", error="invalid_token", error_description="revoked"'
        )
