"""Fixtures for the store tests: a KEK ring, a hand-moved clock, and one harness per
(backend, layout, sync/async) so the contract suite runs unchanged on each."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sjti import Kek, KekRing

from ._harness import Clock, Harness, MemoryHarness, SqlHarness, SqlNames, drop_tables

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite-owned", id="sqlite-owned"),
    pytest.param("sqlite-app", id="sqlite-app"),
    pytest.param("postgres-owned", id="postgres-owned", marks=pytest.mark.service),
    pytest.param("postgres-app", id="postgres-app", marks=pytest.mark.service),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ring() -> KekRing:
    return KekRing([Kek.generate("kek-1")])


@pytest.fixture
def store_clock() -> Clock:
    return Clock()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file database, not :memory:: real locking, real second connections."""
    return f"sqlite:///{tmp_path / 'sjti.db'}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def database_url(request: pytest.FixtureRequest, database: str) -> str:
    """Ask for PostgreSQL only when a test needs it, so SQLite tests never wait for it."""
    if database == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest,
    backend: str,
    mode: str,
    ring: KekRing,
    store_clock: Clock,
    anyio_backend: str,
) -> AsyncGenerator[Harness, None]:
    if backend == "memory":
        yield MemoryHarness(ring, store_clock, use_async=mode == "async")
        return
    database, layout_kind = backend.split("-")
    url = database_url(request, database)
    sql = await SqlHarness(url, layout_kind, ring, store_clock, use_async=mode == "async").start()
    try:
        yield sql
    finally:
        await sql.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def sql_url(request: pytest.FixtureRequest) -> str:
    """A SQLite file or the session's PostgreSQL database (for SQL-only tests)."""
    return database_url(request, str(request.param))


@pytest.fixture
def names() -> SqlNames:
    return SqlNames.unique()


@pytest.fixture
def engine(sql_url: str, names: SqlNames) -> Generator[sa.Engine, None, None]:
    """A sync engine; the tables named by ``names`` are dropped afterwards (PostgreSQL)."""
    engine = sa.create_engine(sql_url)
    yield engine
    drop_tables(engine, names.all)
    engine.dispose()
