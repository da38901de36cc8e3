"""Concurrent first logins and revocations: one secret per user, no lost rotation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sjti import KekRing
from sjti.stores.sql import Layout, SqlSecretStore
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._harness import SqlNames, app_layout, owned_layout

T = TypeVar("T")
THREADS = 16


def race(count: int, work: Callable[[], T]) -> list[T]:
    """Run ``work`` on ``count`` threads released together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(work())
        except BaseException as exc:  # re-raised below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def layout_for(kind: str, engine: sa.Engine, names: SqlNames) -> Layout:
    if kind == "owned":
        return owned_layout(engine, names)
    users, layout = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(users.insert().values(id=1))
    return layout


def rows_and_version(engine: sa.Engine, names: SqlNames, kind: str) -> tuple[int, int]:
    user_id: object
    if kind == "owned":
        table = sa.table(names.secrets, sa.column("user_id"), sa.column("version"))
        id_column, version, user_id = table.c.user_id, table.c.version, "1"
    else:
        table = sa.table(names.users, sa.column("id"), sa.column("token_version"))
        id_column, version, user_id = table.c.id, table.c.token_version, 1
    with engine.connect() as conn:
        rows = conn.execute(sa.select(version).where(id_column == user_id)).all()
    return len(rows), int(rows[0][0])


@pytest.mark.parametrize("kind", ["owned", "app"])
def test_concurrent_first_ensure_creates_one_secret(
    engine: sa.Engine, names: SqlNames, ring: KekRing, kind: str
) -> None:
    """Sixteen first logins at once: all get the same key, none overwrites another's."""
    store = SqlSecretStore(engine, ring, layout_for(kind, engine, names))
    keys = race(THREADS, lambda: store.ensure("1").secret_bytes())
    assert len(keys) == THREADS
    assert len(set(keys)) == 1
    assert store.load_secret("1") == keys[0]
    assert rows_and_version(engine, names, kind) == (1, 1)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["owned", "app"])
async def test_concurrent_first_ensure_async(
    sql_url: str, engine: sa.Engine, names: SqlNames, ring: KekRing, kind: str
) -> None:
    """The same race between asyncio tasks sharing one async engine."""
    layout = layout_for(kind, engine, names)
    async_engine = create_async_engine(sql_url.replace("sqlite://", "sqlite+aiosqlite://"))
    try:
        store = AsyncSqlSecretStore(async_engine, ring, layout)
        keys = await asyncio.gather(*(store.ensure("1") for _ in range(THREADS)))
    finally:
        await async_engine.dispose()
    assert len({key.secret_bytes() for key in keys}) == 1
    assert rows_and_version(engine, names, kind) == (1, 1)


def test_concurrent_revocations_all_count(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """Parallel revocations of one user serialise: every one rotates and is audited."""
    store = SqlSecretStore(engine, ring, owned_layout(engine, names))
    store.ensure("1")
    results = race(8, lambda: store.revoke("1", actor="ops").count)
    assert results == [1] * 8
    assert rows_and_version(engine, names, "owned") == (1, 9)
    assert len(store.audit_log()) == 8
