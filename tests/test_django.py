"""tests/django in a pytest of its own (pytest-django on, Django settings for that run
only), on SQLite and again on PostgreSQL: the suite's other tests never see Django."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_django_suite(env: dict[str, str], *extra: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "pytest", "tests/django", "-p", "django", "-q",
         "-p", "no:cacheprovider", *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " failed" not in done.stdout
    return done.stdout


@pytest.mark.service
def test_django_suite_on_sqlite(tmp_path: Path) -> None:
    """Every test of tests/django on SQLite (with Redis for the bus tests, a real
    gunicorn and runserver)."""
    env = {**os.environ, "SJTI_TEST_DJANGO_DIR": str(tmp_path)}
    env.pop("SJTI_TEST_DJANGO_PG", None)
    out = _run_django_suite(env)
    assert " passed" in out


@pytest.mark.service
def test_django_suite_on_postgresql(postgres_server_url: str, tmp_path: Path) -> None:
    """Every test of tests/django with DATABASES on PostgreSQL (NOTIFY bus, row locks)."""
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
    out = _run_django_suite(env, "--create-db", "--deselect", "tests/django/test_http.py")
    assert " passed" in out
