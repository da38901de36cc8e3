"""Races between separate OS processes on one PostgreSQL: what threads cannot show."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor

import pytest
import sqlalchemy as sa

from sjti import KekRing
from sjti.stores.sql import OwnedTable, upgrade

from . import _workers
from ._harness import SqlNames, app_layout, drop_tables

pytestmark = pytest.mark.service
PROCESSES = 4


@pytest.fixture(scope="module")
def pool() -> Generator[ProcessPoolExecutor, None, None]:
    """Spawned (not forked) workers, started and warmed once for the module."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=context, initializer=_workers.warm) as pool:
        list(pool.map(time.sleep, [0.0] * PROCESSES))
        yield pool


@pytest.fixture
def pg_engine(postgres_url: str, names: SqlNames) -> Generator[sa.Engine, None, None]:
    engine = sa.create_engine(postgres_url)
    yield engine
    drop_tables(engine, names.all)
    engine.dispose()


@pytest.mark.parametrize("kind", ["owned", "app"])
def test_first_ensure_from_four_processes_creates_one_secret(
    pool: ProcessPoolExecutor,
    postgres_url: str,
    pg_engine: sa.Engine,
    names: SqlNames,
    ring: KekRing,
    kind: str,
) -> None:
    """Four app processes serving the same user's first login agree on one key."""
    if kind == "app":
        users, _ = app_layout(pg_engine, names)
        with pg_engine.begin() as conn:
            conn.execute(users.insert().values(id=1))
        table = names.users
    else:
        table = names.secrets
        upgrade(pg_engine, OwnedTable(names.secrets, **names.log))
    start_at = time.time() + 0.5
    args = (postgres_url, kind, table, names.audit, ring.to_config(), "1", start_at)
    futures = [pool.submit(_workers.ensure_at, *args) for _ in range(PROCESSES)]
    keys = [future.result(timeout=30) for future in futures]
    assert len(keys) == PROCESSES
    assert len(set(keys)) == 1


def test_racing_upgrades_from_processes(
    pool: ProcessPoolExecutor, postgres_url: str, pg_engine: sa.Engine, names: SqlNames
) -> None:
    """Several instances deploying at once: the advisory lock lets exactly one migrate."""
    start_at = time.time() + 0.5
    futures = [
        pool.submit(_workers.upgrade_at, postgres_url, names.secrets, names.audit, start_at)
        for _ in range(PROCESSES)
    ]
    applied = sorted(len(f.result(timeout=30)) for f in futures)
    assert applied == [0] * (PROCESSES - 1) + [5]
