"""PostgreSQL NOTIFY: sent inside the revocation transaction, so only commits announce."""

from __future__ import annotations

import secrets
from collections.abc import Generator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.ext.asyncio import create_async_engine

from sjti import BackendError, KekRing
from sjti._core.invalidation import encode_event
from sjti.stores import Cohort
from sjti.stores.sql import SqlSecretStore
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._harness import SqlNames, drop_tables, owned_layout

pytestmark = pytest.mark.service


@pytest.fixture
def pg_engine(postgres_url: str, names: SqlNames) -> Generator[sa.Engine, None, None]:
    engine = sa.create_engine(postgres_url)
    yield engine
    drop_tables(engine, names.all)
    engine.dispose()


@pytest.fixture
def channel() -> str:
    return f"sjti_test_{secrets.token_hex(4)}"


@pytest.fixture
def listening(postgres_url: str, channel: str) -> Generator[psycopg.Connection, None, None]:
    """A second, independent connection that LISTENs like a node's bus subscriber would."""
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        yield conn


def received(
    conn: psycopg.Connection, expected: int = 0, timeout: float = 0.3
) -> list[tuple[str, str]]:
    """What arrived: waits for ``expected`` messages (or ``timeout`` seconds, then more)."""
    stop = expected or None
    return [(n.channel, n.payload) for n in conn.notifies(timeout=timeout, stop_after=stop)]


def test_revocation_notifies_the_encoded_ids(
    pg_engine: sa.Engine,
    names: SqlNames,
    ring: KekRing,
    channel: str,
    listening: psycopg.Connection,
) -> None:
    """Every node learns the event id and exactly which users to drop (the v2 hint)."""
    store = SqlSecretStore(pg_engine, ring, owned_layout(pg_engine, names), notify_channel=channel)
    for user_id in ("u2", "u1", "u3"):
        store.ensure(user_id)
    store.revoke_many(["u2", "u1"])
    store.revoke("u3")
    assert received(listening, expected=2, timeout=5) + received(listening) == [
        (channel, encode_event(1, ["u1", "u2"])),
        (channel, encode_event(2, ["u3"])),
    ]


def test_dry_run_and_rolled_back_revocations_notify_nothing(
    pg_engine: sa.Engine,
    names: SqlNames,
    ring: KekRing,
    channel: str,
    listening: psycopg.Connection,
) -> None:
    """A preview or a failed transaction must not make nodes drop keys that did not change."""
    store = SqlSecretStore(pg_engine, ring, owned_layout(pg_engine, names), notify_channel=channel)
    store.ensure("u1")
    before = store.load_secret("u1")
    calls: list[object] = []
    store.add_listener(calls.append)
    store.revoke_many(["u1"], dry_run=True)
    store.revoke_cohort(Cohort(user_ids=frozenset({"u1"})), dry_run=True)
    # Make the audit insert (in the same transaction as the event row and pg_notify) fail:
    # the whole revocation, NOTIFY included, must roll back.
    with pg_engine.begin() as conn:
        conn.execute(sa.text(
            f'ALTER TABLE "{names.audit}" ADD CONSTRAINT refuse CHECK (count < 0) NOT VALID'
        ))  # fmt: skip
    with pytest.raises(BackendError):
        store.revoke("u1")
    assert received(listening) == []
    assert store.load_secret("u1") == before
    assert calls == []


@pytest.mark.anyio
async def test_async_store_notifies_too(
    postgres_url: str,
    pg_engine: sa.Engine,
    names: SqlNames,
    ring: KekRing,
    channel: str,
    listening: psycopg.Connection,
) -> None:
    """The async store sends the same NOTIFY from the same plan."""
    layout = owned_layout(pg_engine, names)
    engine = create_async_engine(postgres_url)
    try:
        store = AsyncSqlSecretStore(engine, ring, layout, notify_channel=channel)
        await store.ensure("u1")
        await store.revoke("u1")
    finally:
        await engine.dispose()
    assert received(listening, expected=1, timeout=5) == [(channel, encode_event(1, ["u1"]))]
