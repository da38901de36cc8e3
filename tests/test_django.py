"""tests/django in a pytest of its own (pytest-django on, Django settings for that run
only), on SQLite and again on PostgreSQL: the suite's other tests never see Django. The
runs may have started in the background earlier (tests/_django_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._django_runs import postgres_run, sqlite_run, take


@pytest.mark.service
def test_django_suite_on_sqlite(tmp_path: Path) -> None:
    """Every test of tests/django on SQLite (with Redis for the bus tests, a real
    gunicorn and runserver)."""
    child = take("sqlite") or sqlite_run(str(tmp_path))
    assert " passed" in child.verdict()


@pytest.mark.service
def test_django_suite_on_postgresql(postgres_server_url: str, tmp_path: Path) -> None:
    """Every test of tests/django with DATABASES on PostgreSQL (NOTIFY bus, row locks)."""
    child = take("postgres") or postgres_run(postgres_server_url, str(tmp_path))
    assert " passed" in child.verdict()
