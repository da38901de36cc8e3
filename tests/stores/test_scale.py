"""Incident-sized cohorts: 10_001 users revoked in one transaction, in seconds.

The seconds are printed (run with ``-s``), never asserted: speed claims belong to the
benchmark, not to pass/fail tests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sjti import KekRing, WrappedSecret
from sjti._core.invalidation import encode_event
from sjti._core.wrapping import generate_user_key
from sjti.stores import MAX_LISTED_IDS, Cohort
from sjti.stores.sql import AppUsersTable, CohortColumns, Layout, SqlSecretStore
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._harness import SqlNames, app_layout, owned_layout

BIG = MAX_LISTED_IDS + 1  # one past the listing limit: announced as "everyone"
SMALL = 100


def populate(engine: sa.Engine, names: SqlNames, ring: KekRing, kind: str) -> Layout:
    """BIG users in tenant "big", SMALL in "small", all with a secret; bulk-inserted."""
    users, app = app_layout(engine, names)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    ids = range(1, BIG + SMALL + 1)
    wrapped = {i: ring.wrap(str(i), generate_user_key()).to_str() for i in ids}
    user_rows: list[dict[str, object]] = [
        {"id": i, "tenant": "big" if i <= BIG else "small"} for i in ids
    ]
    layout: Layout = app
    if kind == "app":
        for i, row in zip(ids, user_rows, strict=True):
            row.update(token_secret=wrapped[i], token_version=1, token_rotated_at=now)
    with engine.begin() as conn:
        conn.execute(users.insert(), user_rows)
    if kind == "owned":
        layout = owned_layout(engine, names)
        secrets = sa.Table(names.secrets, sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(secrets.insert(), [
                {"user_id": str(i), "wrapped_secret": wrapped[i], "kek_id": ring.primary.kid,
                 "version": 1, "rotated_at": now}
                for i in ids
            ])  # fmt: skip
    return layout


def users_of(layout: Layout, engine: sa.Engine, names: SqlNames) -> CohortColumns:
    table = (
        layout.table
        if isinstance(layout, AppUsersTable)
        else sa.Table(names.users, sa.MetaData(), autoload_with=engine)
    )
    return CohortColumns(table, tenant="tenant")


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "mode"), [("owned", "sync"), ("app", "sync"), ("owned", "async")])
async def test_revoking_a_ten_thousand_user_cohort(
    sql_url: str, engine: sa.Engine, names: SqlNames, ring: KekRing, kind: str, mode: str
) -> None:
    """A tenant-wide incident must revoke everyone in one transaction, in a few seconds."""
    layout = populate(engine, names, ring, kind)
    channel = "sjti_scale" if engine.dialect.name == "postgresql" else None
    columns = users_of(layout, engine, names)
    bystander, victim = str(BIG + 1), "1"
    before = {
        user_id: secret_of(engine, names, kind, ring, user_id) for user_id in (bystander, victim)
    }
    announced: list[Sequence[str] | None] = []
    listening = None
    if channel is not None:
        listening = psycopg.connect(sql_url.replace("+psycopg", ""), autocommit=True)
        listening.execute(f"LISTEN {channel}")
    async_engine = create_async_engine(sql_url.replace("sqlite://", "sqlite+aiosqlite://"))
    try:
        cohort = Cohort(tenant="big")
        if mode == "sync":
            store = SqlSecretStore(
                engine, ring, layout, cohort_columns=columns, notify_channel=channel
            )
            store.add_listener(announced.append)
            started = time.perf_counter()
            result = store.revoke_cohort(cohort, actor="sec", reason="tenant breach")
        else:
            astore = AsyncSqlSecretStore(
                async_engine, ring, layout, cohort_columns=columns, notify_channel=channel
            )
            astore.add_listener(announced.append)
            started = time.perf_counter()
            result = await astore.revoke_cohort(cohort, actor="sec", reason="tenant breach")
        elapsed = time.perf_counter() - started
        notified = (
            [n.payload for n in listening.notifies(timeout=5, stop_after=1)] if listening else []
        )
    finally:
        await async_engine.dispose()
        if listening is not None:
            listening.close()
    print(f"\n10k cohort revocation, {engine.dialect.name}/{kind}/{mode}: {elapsed:.2f} s")
    assert (result.count, result.truncated, len(result.user_ids)) == (BIG, True, MAX_LISTED_IDS)
    assert announced == [None]  # too many to list: every node drops its whole cache
    if channel is not None:
        # One event for the whole cohort, not one message per user: every node reads it.
        assert notified == [encode_event(1, None)]
    assert result.event_id == 1
    assert secret_of(engine, names, kind, ring, bystander) == before[bystander]
    assert secret_of(engine, names, kind, ring, victim) != before[victim]


def secret_of(engine: sa.Engine, names: SqlNames, kind: str, ring: KekRing, user_id: str) -> bytes:
    """The committed secret, read straight from the table."""
    value: object
    if kind == "app":
        t = sa.table(names.users, sa.column("token_secret"), sa.column("id", sa.Integer))
        column, key, value = t.c.token_secret, t.c.id, int(user_id)
    else:
        t = sa.table(names.secrets, sa.column("wrapped_secret"), sa.column("user_id"))
        column, key, value = t.c.wrapped_secret, t.c.user_id, user_id
    with engine.connect() as conn:
        text = conn.execute(sa.select(column).where(key == value)).scalar_one()
    return ring.unwrap(user_id, WrappedSecret.from_str(text))
