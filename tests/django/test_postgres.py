"""The whole Django suite again on PostgreSQL (pytest-django's settings are per process,
so a child pytest runs it with SJTI_TEST_DJANGO_PG set): NOTIFY bus, row locks, the
store on the same database as the ORM."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.service
def test_django_suite_on_postgresql(postgres_server_url: str, tmp_path: Path) -> None:
    """Every test of tests/django passes with DATABASES on PostgreSQL."""
    if os.environ.get("SJTI_TEST_DJANGO_PG"):
        pytest.skip("already the PostgreSQL run")
    from sqlalchemy.engine import make_url

    url = make_url(postgres_server_url)
    env = {
        **os.environ,
        "SJTI_TEST_DJANGO_PG": f"sjti_django_{secrets.token_hex(4)}",
        "SJTI_TEST_DJANGO_PG_USER": url.username or "postgres",
        "SJTI_TEST_DJANGO_PG_HOST": url.host or "127.0.0.1",
        "SJTI_TEST_DJANGO_PG_PORT": str(url.port or 5432),
        "SJTI_TEST_DJANGO_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "tests/django", "-q", "-p", "no:cacheprovider",
            "--deselect", "tests/django/test_http.py", "--create-db",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
    assert " failed" not in done.stdout
