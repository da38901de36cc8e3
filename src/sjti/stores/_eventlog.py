"""The revocation event log (a transactional outbox) and the node registry: statements
and plans, shared by the sync and async SQL stores like :mod:`sjti.stores._plans`.

Ordering
    An event's id is taken inside the revocation's transaction, under a lock held until
    commit (``pg_advisory_xact_lock`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
    admits one writer), as ``max(id) + 1``. So ids are **gapless and commit in order**:
    once event N is visible, every event below N is visible too and none can appear
    later. A node's watermark (the last id it applied) is therefore a complete summary of
    what it has seen, and "read everything after my watermark" never misses a row that
    commits afterwards.

Publishing
    With ``notify_channel`` the event is announced by ``pg_notify`` in the same
    transaction (``published`` is true from the start). Otherwise the store's event
    listeners (the relay) publish after commit and mark the row; rows left unpublished
    (bus down, process killed) are published again later by any node's relay. Nodes also
    poll ``max(id)``, so an event nobody published is still found within the poll interval.

Nodes
    Every node upserts ``(id, watermark, seen_at)`` on a heartbeat and right after applying
    events; an acknowledged revocation waits until every node seen recently has a watermark
    at or above the event's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Insert,
    Select,
    Update,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .._core.invalidation import encode_event
from . import _statements as st
from ._ops import Execute, Fetch, Job, Plan
from .base import EventPage, NodeRecord, RevocationEvent

__all__ = [
    "append",
    "events_after",
    "forget_node",
    "heartbeat",
    "latest",
    "live_nodes",
    "mark_published",
    "pending",
    "prune",
]

T = TypeVar("T")
_EVENTS_LOCK_KEY: Final = 0x736A74695F657674  # "sjti_evt": orders event ids
PAGE: Final = 1000  # events read per round when catching up


# -- statements -----------------------------------------------------------------------------


def _lock(ctx: st.Context) -> Select[Any] | None:
    if ctx.dialect != "postgresql":
        return None  # SQLite: the BEGIN IMMEDIATE transaction is the lock
    return select(func.pg_advisory_xact_lock(literal(_EVENTS_LOCK_KEY, BigInteger)))


def _next_id(ctx: st.Context) -> Select[Any]:
    return select((func.coalesce(func.max(ctx.events.c.id), 0) + 1).label("id"))


def _insert(ctx: st.Context, event_id: int, values: dict[str, object]) -> Insert:
    return ctx.events.insert().values(id=event_id, **values)


def _bounds(ctx: st.Context) -> Select[Any]:
    e = ctx.events.c
    return select(func.min(e.id).label("oldest"), func.max(e.id).label("latest"))


def _after(ctx: st.Context, after: int, limit: int) -> Select[Any]:
    e = ctx.events.c
    return select(e.id, e.kind, e.users, e.at).where(e.id > after).order_by(e.id).limit(limit)


def _unpublished(ctx: st.Context, before: datetime, limit: int) -> Select[Any]:
    e = ctx.events.c
    return (
        select(e.id, e.kind, e.users, e.at)
        .where(e.published.is_(False), e.at <= before)
        .order_by(e.id)
        .limit(limit)
    )


def _mark(ctx: st.Context, ids: Sequence[int]) -> Update:
    return update(ctx.events).where(ctx.events.c.id.in_(list(ids))).values(published=True)


def _prune_cutoff(ctx: st.Context, before: datetime) -> ColumnElement[Any]:
    """The first id to keep: the oldest event at or after ``before``, else the newest.

    A prefix of ids, never a hole in the middle: an event's time is taken before its id,
    so a slow revocation can carry an earlier time than the event before it. The newest
    row always stays: it is how a node learns the log's position.
    """
    e = ctx.events.c
    first_recent = select(func.min(e.id)).where(e.at >= before).scalar_subquery()
    newest = select(func.max(e.id)).scalar_subquery()
    return func.coalesce(first_recent, newest)


def _prune(ctx: st.Context, before: datetime) -> Delete:
    return delete(ctx.events).where(ctx.events.c.id < _prune_cutoff(ctx, before))


def _upsert_node(ctx: st.Context, values: dict[str, object]) -> Insert:
    dialect_insert = postgresql.insert if ctx.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(ctx.nodes).values(values)
    return statement.on_conflict_do_update(
        index_elements=[ctx.nodes.c.id],
        set_={
            "watermark": statement.excluded.watermark,
            "seen_at": statement.excluded.seen_at,
            "info": statement.excluded.info,
        },
    )


# -- decoding --------------------------------------------------------------------------------


def _users_json(user_ids: Sequence[str] | None) -> str | None:
    return None if user_ids is None else orjson.dumps(list(user_ids)).decode()


def _event(row: Any) -> RevocationEvent:
    users = None if row["users"] is None else tuple(orjson.loads(row["users"]))
    return RevocationEvent(int(row["id"]), row["kind"], users, row["at"])


# -- plans -------------------------------------------------------------------------------------


def append(
    ctx: st.Context,
    *,
    kind: str,
    user_ids: Sequence[str] | None,
    count: int,
    audit_id: int | None,
    now: datetime,
) -> Plan[int]:
    """A sub-plan (``yield from``) for a revocation's transaction: the event row, and the
    NOTIFY that carries it when the store has a channel. Returns the event id."""
    lock = _lock(ctx)
    if lock is not None:
        yield Fetch(lock)
    event_id = int((yield Fetch(_next_id(ctx)))[0]["id"])
    notified = ctx.notify_channel is not None
    values = {
        "at": now,
        "kind": kind,
        "count": count,
        "audit_id": audit_id,
        "users": _users_json(user_ids),
        "published": notified,
    }
    yield Execute(_insert(ctx, event_id, values))
    if notified:
        yield Fetch(st.notify(ctx, encode_event(event_id, user_ids)))
    return event_id


def _read_job(plan: Plan[T]) -> Job[T]:
    return Job(plan, write=False)


def _write_job(ctx: st.Context, plan: Plan[T]) -> Job[T]:
    return Job(plan, write=True, begin=st.begin_write(ctx))


def events_after(ctx: st.Context, after: int, limit: int = PAGE) -> Job[EventPage]:
    """Job: up to ``limit`` events with ``id > after``, and the log's bounds.

    One statement (one round trip, one snapshot) when there are events: this is what every
    node runs on every hint. The bounds alone when there are none.
    """

    def plan() -> Plan[EventPage]:
        e = ctx.events.c
        rows = yield Fetch(
            select(
                e.id,
                e.kind,
                e.users,
                e.at,
                select(func.min(e.id)).scalar_subquery().label("oldest"),
                select(func.max(e.id)).scalar_subquery().label("latest"),
            )
            .where(e.id > after)
            .order_by(e.id)
            .limit(limit)
        )
        if rows:
            oldest, latest = rows[0]["oldest"], rows[0]["latest"]
        else:
            bounds = (yield Fetch(_bounds(ctx)))[0]
            oldest, latest = bounds["oldest"], bounds["latest"]
        return EventPage(
            tuple(_event(r) for r in rows),
            None if oldest is None else int(oldest),
            int(latest or 0),
        )

    return _read_job(plan())


def latest(ctx: st.Context) -> Job[int]:
    """Job: the newest event id (0 for an empty log): the cheap poll."""

    def plan() -> Plan[int]:
        rows = yield Fetch(select(func.max(ctx.events.c.id).label("latest")))
        return int(rows[0]["latest"] or 0)

    return _read_job(plan())


def pending(ctx: st.Context, older_than: float, limit: int = PAGE) -> Job[list[RevocationEvent]]:
    """Job: events not yet published that committed at least ``older_than`` s ago."""

    def plan() -> Plan[list[RevocationEvent]]:
        before = ctx.clock() - timedelta(seconds=older_than)
        return [_event(r) for r in (yield Fetch(_unpublished(ctx, before, limit)))]

    return _read_job(plan())


def mark_published(ctx: st.Context, ids: Sequence[int]) -> Job[None]:
    def plan() -> Plan[None]:
        if ids:
            yield Execute(_mark(ctx, ids))

    return _write_job(ctx, plan())


def prune(ctx: st.Context, before: datetime) -> Job[int]:
    """Job: delete events older than ``before`` (never the newest); how many went."""

    def plan() -> Plan[int]:
        doomed = yield Fetch(
            select(func.count().label("n")).where(ctx.events.c.id < _prune_cutoff(ctx, before))
        )
        yield Execute(_prune(ctx, before))
        return int(doomed[0]["n"])

    return _write_job(ctx, plan())


def _db_now(ctx: st.Context, minus: float = 0.0) -> ColumnElement[Any]:
    """The database's clock (``minus`` seconds ago): one clock for every node's heartbeat
    and every liveness judgement, so a host whose own clock is off cannot look dead while
    it serves, nor alive after it died. SQLite: the text form SQLAlchemy stores."""
    if ctx.dialect == "postgresql":
        return func.clock_timestamp() - literal(timedelta(seconds=minus))
    return func.strftime("%Y-%m-%d %H:%M:%f000", "now", f"-{minus:.6f} seconds")


def heartbeat(ctx: st.Context, node_id: str, watermark: int, info: str | None) -> Job[None]:
    """Job: this node is alive and has applied every event up to ``watermark``."""

    def plan() -> Plan[None]:
        if ctx.dialect == "postgresql":
            # A heartbeat lost in a server crash is simply sent again: no need to wait for
            # the WAL flush (about half its latency, and acknowledgements wait on it).
            yield Execute(text("SET LOCAL synchronous_commit = off"))
        values = {
            "id": node_id[:64],
            "watermark": watermark,
            "seen_at": _db_now(ctx),
            "started_at": _db_now(ctx),
            "info": None if info is None else info[:128],
        }
        yield Execute(_upsert_node(ctx, values))

    return _write_job(ctx, plan())


def live_nodes(ctx: st.Context, within: float) -> Job[list[NodeRecord]]:
    """Job: the nodes seen in the last ``within`` seconds (by the database's clock)."""

    def plan() -> Plan[list[NodeRecord]]:
        n = ctx.nodes.c
        rows = yield Fetch(
            select(ctx.nodes).where(n.seen_at >= _db_now(ctx, within)).order_by(n.id)
        )
        return [
            NodeRecord(r["id"], int(r["watermark"]), r["seen_at"], r["started_at"], r["info"])
            for r in rows
        ]

    return _read_job(plan())


def forget_node(ctx: st.Context, node_id: str) -> Job[None]:
    """Job: a node that shuts down cleanly leaves the registry at once."""

    def plan() -> Plan[None]:
        yield Execute(delete(ctx.nodes).where(ctx.nodes.c.id == node_id))

    return _write_job(ctx, plan())
