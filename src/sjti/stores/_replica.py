"""Cache misses served from a streaming replica without ever serving a revoked key.

The danger: a node applies a revocation event for user X (its cache drops X), then a miss
for X reads a replica that has not replayed that revocation yet and caches X's old key;
no further event will come, so the revoked token would be accepted until the entry ages
out. The rule that closes it (docs/storage.md, "Read replica"):

    A replica read for X is used only if the replica's snapshot contains the newest
    event this node applied that touched X, proven in the same statement.

:class:`ReplicaGuard` keeps what the rule needs, learned where the node learns it: the
event log pages its bus reads (:meth:`ReplicaGuard.saw_page`, before the bus applies
them), the log's newest id when a bus starts from it (:meth:`ReplicaGuard.saw_latest`)
and this process's own commits (:meth:`ReplicaGuard.saw_commit`, before its listeners
run). Event ids are gapless and commit in order (:mod:`sjti.stores._eventlog`), and a
standby replays commits in that order, so a snapshot holding event N holds every event up
to N with everything its transaction changed. So one id per user is enough, and when the
memory is full the oldest users are folded into ``floor`` (an id every replica read must
contain): forgetting only makes the check stricter, it never lets a stale row through.

The lookup (:func:`compile_replica_lookup`) is the hot primary-key ``SELECT`` with one
more column, ``EXISTS (SELECT 1 FROM events WHERE id = :need)``: one statement, one
snapshot. Anything short of proof (no row, no secret, the event not there yet, a secret
that does not open, a replica that fails) sends the lookup to the primary: the replica
can only spare the primary a read, never decide a refusal.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import Engine, bindparam, exists, func, literal_column, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import BackendError, ConfigurationError, UnwrapError
from . import _lookup as lookups
from . import _plans as plans
from . import _statements as st
from .base import EventPage, RevocationResult

__all__ = [
    "DOWN_FOR",
    "MAX_USERS",
    "AsyncReplica",
    "Replica",
    "ReplicaGuard",
    "compile_replica_lookup",
    "seen_latest",
    "seen_page",
    "seen_result",
]

MAX_USERS: Final = 65_536  # users remembered one by one; beyond, folded into the floor
DOWN_FOR: Final = 5.0  # seconds a failed replica is left alone (lookups go to the primary)
_NEED: Final = "b_need"


class ReplicaGuard:
    """Per user, the newest event id a replica read must contain (thread-safe).

    ``need(user_id)`` is ``None`` until the node has read the event log once: a process
    that never follows the log cannot prove anything and always reads the primary.
    """

    __slots__ = ("_floor", "_lock", "_max_users", "_recent", "_seen")

    def __init__(self, max_users: int = MAX_USERS) -> None:
        if max_users < 1:
            raise ConfigurationError("max_users must be at least 1")
        self._max_users = max_users
        self._lock = threading.Lock()
        self._floor = 0  # every replica read must contain this event
        self._seen: int | None = None  # the log is known through this id (None: never read)
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()

    def need(self, user_id: str) -> int | None:
        """The event id the replica must hold to serve ``user_id`` (0: none; ``None``: the
        log was never read, use the primary)."""
        if self._seen is None:
            return None
        return max(self._floor, self._recent.get(user_id, 0))  # two atomic reads

    def saw_latest(self, latest: int) -> None:
        """The log's newest id was read. A bus starts from it without reading the events
        below (it clears its cache): the replica must hold it. Also when a poll finds the
        log ahead of what was read: stricter than needed, never looser."""
        with self._lock:
            if self._seen is None or latest > self._seen:
                self._floor = max(self._floor, latest)
                self._seen = max(self._seen or 0, latest)

    def saw_page(self, after: int, page: EventPage) -> None:
        """Events after ``after`` were read from the log (before the bus applies them).

        A page the bus cannot replay one by one (pruned gap, ids missing, the log behind
        the watermark) makes it clear and start at ``page.latest``: so does the floor.
        """
        with self._lock:
            # The caller may claim to be current up to ``after`` in a way we did not see.
            if self._seen is None or after > self._seen:
                self._floor = max(self._floor, after)
            gap = page.latest < after or (
                page.oldest is not None and page.oldest > after + 1 and page.latest > after
            )
            expected = after + 1
            for event in () if gap else page.events:
                if event.id != expected:
                    gap = True
                    break
                self._remember(event.id, event.user_ids)
                expected += 1
            if gap:
                self._floor = max(self._floor, page.latest)
            self._seen = max(self._seen or 0, page.latest if gap else expected - 1)

    def saw_commit(self, event_id: int | None, user_ids: Sequence[str] | None) -> None:
        """This process committed ``event_id`` (before its listeners drop the users)."""
        if event_id is None:
            return
        with self._lock:
            self._remember(event_id, user_ids)

    def saw_result(self, result: RevocationResult) -> None:
        """A revocation or sign-in this process committed (before its listeners run)."""
        if result.count and not result.dry_run:
            self.saw_commit(result.event_id, None if result.truncated else result.user_ids)

    def _remember(self, event_id: int, user_ids: Sequence[str] | None) -> None:
        """Under the lock. An event naming nobody (a cohort too large to list) or more
        users than the memory holds raises the floor instead."""
        recent = self._recent
        if user_ids is None or len(user_ids) > self._max_users // 4:
            self._floor = max(self._floor, event_id)
            return
        for user_id in user_ids:
            if recent.get(user_id, 0) < event_id:
                recent[user_id] = event_id
                recent.move_to_end(user_id)
        while len(recent) > self._max_users:
            _, forgotten = recent.popitem(last=False)
            self._floor = max(self._floor, forgotten)

    def __repr__(self) -> str:
        return f"ReplicaGuard(floor={self._floor}, users={len(self._recent)})"


def compile_replica_lookup(ctx: st.Context, dialect: Dialect) -> lookups.Lookup:
    """The hot lookup plus ``EXISTS (the event :need)``, compiled once for ``dialect``."""
    t = ctx.target
    e = ctx.events.c
    need = bindparam(_NEED, type_=e.id.type)
    # The event is there, or was already pruned there (the prune committed after it, so
    # it was replayed after it); an empty log proves only "no event needed" (need 0).
    oldest = select(func.coalesce(func.min(e.id), literal_column("1"))).scalar_subquery()
    proof = or_(exists(select(1).where(e.id == need)), need < oldest)
    statement = st.select_secret(ctx, bindparam(lookups.ID, type_=t.id.type))
    return lookups.compile_statement(
        ctx, dialect, statement.add_columns(proof.label("fresh")), (lookups.ID, _NEED)
    )


def _proven(row: Sequence[Any] | None) -> Sequence[Any] | None:
    """The key row if the replica proved it current (its last column), else ``None``."""
    if row is None or not row[-1] or row[1] is None:
        return None
    return row[:-1]


Trusted = Callable[[], bool]


def seen_page(reader: _ReplicaBase | None, after: int, page: EventPage) -> EventPage:
    """A store's ``events_after`` answer, noted before the bus applies it."""
    if reader is not None:
        reader.guard.saw_page(after, page)
    return page


def seen_latest(reader: _ReplicaBase | None, latest: int) -> int:
    """A store's ``latest_event_id`` answer, noted before the bus starts from it."""
    if reader is not None:
        reader.guard.saw_latest(latest)
    return latest


def seen_result(reader: _ReplicaBase | None, result: RevocationResult) -> None:
    """A store's own commit, noted before its listeners drop the users."""
    if reader is not None:
        reader.guard.saw_result(result)


class _ReplicaBase:
    """What the sync and async readers share: when to ask the replica, what to keep."""

    def __init__(self, primary: Engine | AsyncEngine, replica: Engine | AsyncEngine,
                 ctx: st.Context, trusted: Trusted) -> None:  # fmt: skip
        if replica.dialect.name != "postgresql" or primary.dialect.name != "postgresql":
            raise ConfigurationError("a read replica needs PostgreSQL for both engines")
        self.ctx = ctx
        self.guard = ReplicaGuard()
        self.lookup = compile_replica_lookup(ctx, replica.dialect)
        self._trusted = trusted
        self._down_until = -1.0
        self.served = 0  # lookups the replica answered
        self.declined = 0  # lookups it could not prove current (or failed): the primary's

    def need(self, user_id: str) -> int | None:
        """The event the replica must hold for ``user_id``; ``None``: read the primary
        (the cache is bypassed, so the read must be current; the replica failed
        recently; or this node never read the event log)."""
        if time.monotonic() < self._down_until or not self._trusted():
            return None
        return self.guard.need(user_id)

    def failed(self) -> None:
        self._down_until = time.monotonic() + DOWN_FOR
        self.declined += 1

    def opened(self, user_id: str, row: Sequence[Any] | None) -> bytes | None:
        """The key record from a replica row, or ``None``: ask the primary."""
        found = _proven(row)
        if found is not None:
            try:
                record = plans.open_found(self.ctx, user_id, found)
            except UnwrapError:  # re-wrapped on the primary and the old KEK retired
                record = None
            if record is not None:
                self.served += 1
                return record
        self.declined += 1
        return None


class Replica(_ReplicaBase):
    """The sync store's replica reads, on a lane of held replica connections."""

    def __init__(self, primary: Engine, replica: Engine, ctx: st.Context,
                 trusted: Trusted) -> None:  # fmt: skip
        super().__init__(primary, replica, ctx, trusted)
        self.lane = lookups.Lane(replica, self.lookup)

    def read(self, user_id: str, id_value: object) -> bytes | None:
        need = self.need(user_id)
        if need is None:
            return None
        try:
            row = self.lane.fetch(id_value, need)
        except BackendError:  # the replica down: the primary serves, a while
            self.failed()
            return None
        return self.opened(user_id, row)


class AsyncReplica(_ReplicaBase):
    """The async store's replica reads, a pooled replica connection per call."""

    def __init__(self, primary: AsyncEngine, replica: AsyncEngine, ctx: st.Context,
                 trusted: Trusted) -> None:  # fmt: skip
        super().__init__(primary, replica, ctx, trusted)
        self.engine = replica

    async def read(self, user_id: str, id_value: object) -> bytes | None:
        need = self.need(user_id)
        if need is None:
            return None
        try:
            async with self.engine.connect() as conn:
                try:
                    row = await conn.run_sync(lookups.fetch_on, self.lookup, id_value, need)
                except Exception:
                    await conn.invalidate()  # never back to the pool half-broken
                    raise
        except Exception:  # the replica down (any driver or pool error): the primary serves
            self.failed()
            return None
        return self.opened(user_id, row)
