"""Batched cohort revocation (``revoke_batches``): each batch one transaction with its own
event, every cohort user rotated once, bystanders untouched, a failure fails closed, and
the dry run (``preview_batches``) tells what the run will do without writing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sjti import KekRing
from sjti.cache import KeyCache
from sjti.errors import BackendError
from sjti.stores import Cohort, CohortError
from sjti.stores import _plans as plans
from sjti.stores import _statements as st
from sjti.stores._ops import Count, Plan
from sjti.stores.base import RevocationEvent
from sjti.stores.sql import AppUsersTable, CohortColumns, SqlSecretStore
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._harness import SqlNames, app_layout

USERS = 25  # ids 1..25; tenant "acme" holds the odd ones (13 users)
ACME = [i for i in range(1, USERS + 1) if i % 2]


def _store(engine: sa.Engine, names: SqlNames, ring: KekRing) -> SqlSecretStore:
    users, layout = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [{"id": i, "tenant": "acme" if i % 2 else "other"} for i in range(1, USERS + 1)],
        )
    store = SqlSecretStore(
        engine, ring, layout, cohort_columns=CohortColumns(users, tenant="tenant")
    )
    for i in range(1, USERS + 1):
        store.ensure(str(i))
    return store


def _secrets(store: SqlSecretStore) -> dict[int, bytes | None]:
    return {i: store.load_secret(str(i)) for i in range(1, USERS + 1)}


def test_each_batch_commits_with_one_event_listing_its_users(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """13 tenant users in batches of 5: 3 batches, 3 events (5, 5, 3 ids, in id order),
    3 audit rows; exactly the tenant's keys change."""
    store = _store(engine, names, ring)
    before = _secrets(store)
    events: list[RevocationEvent] = []
    store.add_event_listener(events.append)
    batches = list(store.revoke_batches(Cohort(tenant="acme"), batch_size=5, actor="sec"))
    after = _secrets(store)
    assert [b.count for b in batches] == [5, 5, 3]
    assert [b.user_ids for b in batches] == [
        tuple(sorted(map(str, ACME[i : i + 5]))) for i in (0, 5, 10)
    ]
    assert all(b.event_id is not None and b.audit_id is not None for b in batches)
    assert [e.id for e in events] == [b.event_id for b in batches]
    assert [e.user_ids for e in events] == [b.user_ids for b in batches]
    log = store.events_after(0).events
    assert [(e.kind, e.user_ids) for e in log] == [("cohort", b.user_ids) for b in batches]
    changed = {i for i in range(1, USERS + 1) if before[i] != after[i]}
    assert changed == set(ACME)
    assert None not in after.values()
    audit = store.audit_log(limit=10)
    assert [a.detail for a in audit[:3]] == [f"tenant=acme (batch {n})" for n in (3, 2, 1)]
    assert [a.count for a in audit[:3]] == [3, 5, 5]
    store.close()


def test_a_node_cache_drops_exactly_the_cohort_per_batch(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """A node's cache fed by the per-batch announcements drops the cohort's keys, one
    message per batch (not per user), and keeps everyone else's."""
    store = _store(engine, names, ring)
    cache = KeyCache(trusted=True)
    messages: list[Sequence[str] | None] = []

    def node(ids: Sequence[str] | None) -> None:
        messages.append(ids)
        cache.invalidate(ids)

    store.add_listener(node)
    for i in range(1, USERS + 1):
        assert cache.get_or_load(str(i), store.load_secret) is not None
    assert len(cache) == USERS
    list(store.revoke_batches(Cohort(tenant="acme"), batch_size=10))
    assert len(messages) == 2
    assert {str(i) for i in range(1, USERS + 1) if str(i) in cache} == {
        str(i) for i in range(2, USERS + 1, 2)
    }
    store.close()


def test_a_failing_batch_rolls_back_alone_and_the_error_surfaces(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """Batch 2 fails inside its transaction: batch 1 stays revoked with its event, batch 2
    changes nothing and writes no event, and the caller gets the error (fail closed)."""
    store = _store(engine, names, ring)
    before = _secrets(store)
    calls = 0

    def also(ids: Sequence[Any]) -> Plan[None]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise BackendError("refresh tokens unavailable")
        yield from ()

    with pytest.raises(BackendError, match="refresh tokens unavailable"):
        list(store.revoke_batches(Cohort(tenant="acme"), batch_size=5, also=also))
    after = _secrets(store)
    changed = {i for i in range(1, USERS + 1) if before[i] != after[i]}
    assert changed == set(ACME[:5])
    assert len(store.events_after(0).events) == 1
    store.close()


def test_a_run_resumes_after_the_position_its_batch_recorded(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """``record`` runs in each batch's transaction with its ids and the keyset position the
    next batch starts after (the id column's type: an int here); a second run given ``after=`` that
    position revokes exactly the users the first run did not reach, each once."""
    store = _store(engine, names, ring)
    before = _secrets(store)
    recorded: list[Any] = []

    def record(ids: Sequence[Any], last: Any) -> Plan[None]:
        assert len(ids) == 5
        recorded.append(last)
        yield from ()

    first = store.revoke_batches(Cohort(tenant="acme"), batch_size=5, record=record)
    assert next(first).count == 5  # then the run stops (a worker died)
    assert recorded == [ACME[4]]
    assert type(recorded[0]) is int
    middle = _secrets(store)
    rest = list(store.revoke_batches(Cohort(tenant="acme"), batch_size=5, after=recorded[0]))
    assert [b.user_ids for b in rest] == [tuple(map(str, ACME[5:10])), tuple(map(str, ACME[10:]))]
    after = _secrets(store)
    assert {i for i in before if before[i] != middle[i]} == set(ACME[:5])
    assert {i for i in middle if middle[i] != after[i]} == set(ACME[5:])
    store.close()


def test_preview_counts_and_lists_in_batch_order_without_writing(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """The dry run: the count, the first ids in id order, no audit row, no event."""
    store = _store(engine, names, ring)
    audit_before = store.audit_log()
    preview = store.preview_batches(Cohort(tenant="acme"))
    assert (preview.count, preview.dry_run, preview.truncated) == (13, True, False)
    assert preview.user_ids == tuple(map(str, ACME))
    everyone = store.preview_batches(Cohort(rotated_before=datetime.now(UTC) + timedelta(1)))
    assert everyone.count == USERS
    assert store.audit_log() == audit_before
    assert store.events_after(0).events == ()
    store.close()


def test_batched_revocation_refuses_id_lists_and_empty_cohorts(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """Refused when called, before any transaction: an id list (use revoke_many) or no
    criterion at all (that would be everyone)."""
    store = _store(engine, names, ring)
    with pytest.raises(CohortError):
        store.revoke_batches(Cohort(user_ids=frozenset({"1"})))
    with pytest.raises(CohortError):
        store.revoke_batches(Cohort())
    with pytest.raises(CohortError):
        store.preview_batches(Cohort(user_ids=frozenset({"1"})))
    assert store.events_after(0).events == ()
    store.close()


@pytest.mark.anyio
async def test_async_store_revokes_in_the_same_batches(
    sql_url: str, engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """The async twin drives the same plan: same batches, same events."""
    sync_store = _store(engine, names, ring)
    before = _secrets(sync_store)
    layout = sync_store.layout
    assert isinstance(layout, AppUsersTable)
    columns = CohortColumns(layout.table, tenant="tenant")
    async_engine = create_async_engine(sql_url.replace("sqlite://", "sqlite+aiosqlite://"))
    try:
        store = AsyncSqlSecretStore(async_engine, ring, layout, cohort_columns=columns)
        counts = [b.count async for b in store.revoke_batches(Cohort(tenant="acme"), batch_size=6)]
        preview = await store.preview_batches(Cohort(tenant="other"))
        resumed = store.revoke_batches(Cohort(tenant="other"), batch_size=6, after=20)
        rest = [b.user_ids async for b in resumed]
    finally:
        await async_engine.dispose()
    assert counts == [6, 6, 1]
    assert preview.count == USERS - len(ACME)
    assert rest == [("22", "24")]  # after=: only the ids above it
    after = _secrets(sync_store)
    assert {i for i in before if before[i] != after[i]} == set(ACME) | {22, 24}
    sync_store.close()


def test_a_bulk_write_that_misses_a_row_fails_closed(ring: KekRing) -> None:
    """If the database changed fewer rows than selected (an id that did not round-trip),
    the plan raises before the audit and event rows: the transaction rolls back."""
    from sjti.stores.layouts import OwnedTable

    ctx = st.build_context("sqlite", ring, OwnedTable(), None, None, lambda: datetime.now(UTC))
    job = plans.revoke(
        ctx,
        Cohort(user_ids=frozenset({"a", "b"})),
        kind="users",
        detail="2 ids requested",
        actor=None,
        reason=None,
        dry_run=False,
    )
    plan = job.plan
    op = next(plan)
    op = plan.send([{"user_id": "a"}, {"user_id": "b"}])  # the SELECT found both
    assert isinstance(op, Count)
    with pytest.raises(BackendError, match="did not reach every selected user"):
        plan.send([{"n": 1}])  # the UPDATE changed one row


def test_wrap_texts_seals_fresh_or_given_keys_like_wrap(ring: KekRing) -> None:
    """The bulk wrap: each text opens for its own user only, fresh keys all differ, given
    keys come back as given, and bad input is refused like ring.wrap refuses it."""
    from sjti.errors import ConfigurationError, InvalidKeyError, UnwrapError

    ids = [str(i) for i in range(50)]
    fresh = ring.wrap_texts(ids)
    keys = [ring.unwrap_str(user_id, text) for user_id, text in zip(ids, fresh, strict=True)]
    assert len(set(keys)) == 50
    assert len({text.split(".")[2][:16] for text in fresh}) == 50  # distinct nonces
    assert all(text.startswith(f"v1.{ring.primary.kid}.") for text in fresh)
    with pytest.raises(UnwrapError):
        ring.unwrap_str("1", fresh[0])  # user 0's text is not user 1's
    given = [bytes([i]) * 32 for i in range(3)]
    again = ring.wrap_texts(["a", "b", "c"], given)
    assert [ring.unwrap_str(u, t) for u, t in zip("abc", again, strict=True)] == given
    assert ring.wrap_texts([]) == []
    with pytest.raises(ConfigurationError):
        ring.wrap_texts(["a", ""])
    with pytest.raises(ConfigurationError):
        ring.wrap_texts(["a", "b"], given[:1])
    with pytest.raises(InvalidKeyError):
        ring.wrap_texts(["a"], [b"short"])


def test_a_sqlite_without_update_from_is_refused_up_front(
    ring: KekRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotations need UPDATE ... FROM (SQLite 3.33): an older library is a clear
    configuration error when the store is built, never a failed revocation later."""
    import sqlite3

    from sjti.errors import ConfigurationError
    from sjti.stores.layouts import OwnedTable

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    with pytest.raises(ConfigurationError, match=r"SQLite 3\.33\.0 or newer"):
        st.build_context("sqlite", ring, OwnedTable(), None, None, lambda: datetime.now(UTC))
    assert st.build_context("postgresql", ring, OwnedTable(), None, None, datetime.now).ring is ring


def test_a_key_rotated_during_a_rewrap_keeps_its_new_secret(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """The re-wrap locks nothing: it writes a row only if it still holds the secret it
    read. A user revoked between the read and the write keeps the new key (never the old
    one re-wrapped: that would undo the revocation), is not counted, and stays pending
    for the next run; everyone else moves."""
    from sjti import Kek
    from sjti.stores.sql import _execute

    store = _store(engine, names, ring)
    rewrapper = SqlSecretStore(engine, KekRing([Kek.generate("new"), *ring.keks]), store.layout)
    plan = plans.rewrap_batch(rewrapper._ctx, 100, after=None, actor="ops").plan
    with engine.connect() as conn:
        read = _execute(conn, next(plan))  # every secret, read without a lock
        revoked = store.revoke("7")  # another connection rotates user 7 and commits
        assert revoked.count == 1
        fresh = store.load_secret("7")
        try:
            op = plan.send(read)
            while True:
                op = plan.send(_execute(conn, op))
        except StopIteration as stop:
            moved, last = stop.value
        conn.commit()
    assert (moved, last) == (USERS - 1, USERS)
    assert rewrapper.load_secret("7") == fresh  # the revocation stands
    assert rewrapper.rewrap_pending() == 1  # user 7's new key, under the old KEK
    assert sum(rewrapper.rewrap(batch_size=100)) == 1
    store.close()
