"""Cache misses served from a streaming replica without ever serving a revoked key.

The danger: a node's cache drops user X (a revocation applied), then a miss for X reads
a replica that has not replayed that revocation yet and caches X's old key; no further
event will come, so the revoked token would be accepted until the entry ages out. The
rule that closes it (docs/storage.md, "Read replica"):

    A replica read for X is used only if the replica's snapshot contains an event at
    least as new as every change behind a drop of X this node's cache has seen,
    proven in the same statement.

:class:`ReplicaGuard` learns it from the cache itself (:meth:`KeyCache.add_drop_observer
<sjti.cache.KeyCache.add_drop_observer>`): every drop, whoever asks for it, is heard
before the cache drops anything.

* A drop with its event id (the bus replaying the log; a bus starting at the log's
  newest id): X needs that event (everyone, for a drop of everyone).
* A drop without one (a version-1 message, ``bus.publish``, another store's listener,
  an unreadable message, a resync): X reads the primary until a log read that *began
  after the drop* returns; X then needs the newest id that read saw. The change behind
  the drop committed, with its event, before anyone announced it, so that id covers it.

Event ids are gapless and commit in order (:mod:`sjti.stores._eventlog`), and a standby
replays commits in that order, so a snapshot holding event N holds every event up to N
with everything its transaction changed. So one id per user is enough, and when the
memory is full the oldest users are folded into ``floor`` (an id every replica read must
contain): forgetting only makes the check stricter, never looser.

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
from typing import Any, Final, Protocol

from sqlalchemy import Engine, bindparam, exists, func, literal_column, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import BackendError, ConfigurationError, UnwrapError
from . import _lookup as lookups
from . import _plans as plans
from . import _statements as st

__all__ = [
    "DOWN_FOR",
    "MAX_USERS",
    "AsyncReplica",
    "GuardedCache",
    "Replica",
    "ReplicaGuard",
    "compile_replica_lookup",
    "log_read",
]

MAX_USERS: Final = 65_536  # users remembered one by one; beyond, folded into the floor
DOWN_FOR: Final = 5.0  # seconds a failed replica is left alone (lookups go to the primary)
_NEED: Final = "b_need"


class GuardedCache(Protocol):
    """What the replica needs of the node's cache (:class:`sjti.cache.KeyCache`)."""

    @property
    def trusted(self) -> bool: ...

    def add_drop_observer(
        self, observer: Callable[[int | None, tuple[str, ...] | None], None]
    ) -> None: ...


class ReplicaGuard:
    """Per user, the newest event id a replica read must contain (thread-safe).

    ``need(user_id)`` is ``None`` (read the primary) while a drop of that user, or of
    everyone, waits for a log read that began after it; a new guard waits so for its
    first log read (nobody knows yet what the node applied).
    """

    __slots__ = ("_blocked", "_drops", "_floor", "_lock", "_max_users", "_pending", "_recent")

    def __init__(self, max_users: int = MAX_USERS) -> None:
        if max_users < 1:
            raise ConfigurationError("max_users must be at least 1")
        self._max_users = max_users
        self._lock = threading.Lock()
        self._floor = 0  # every replica read must contain this event
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._drops = 0  # unexplained drops so far (a log read's ticket)
        # user -> the number of its last unexplained drop, oldest first
        self._pending: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._blocked: int | None = 0  # an unexplained drop of everyone (0: never read)

    def need(self, user_id: str) -> int | None:
        """The event id the replica must hold to serve ``user_id`` (0: none; ``None``:
        read the primary)."""
        with self._lock:  # an eviction must never fall between the two reads
            if self._blocked is not None or user_id in self._pending:
                return None
            return max(self._floor, self._recent.get(user_id, 0))

    def dropped(self, event_id: int | None, user_ids: Sequence[str] | None) -> None:
        """The cache is about to drop ``user_ids`` (``None``: everyone), because of
        ``event_id`` if known (a :data:`~sjti.cache.DropObserver`)."""
        with self._lock:
            if event_id is not None:
                self._remember(event_id, user_ids)
                return
            self._drops += 1
            pending = self._pending
            if user_ids is None or len(pending) + len(user_ids) > self._max_users:
                self._blocked = self._drops  # everyone waits for the next log read
                pending.clear()
                return
            for user_id in user_ids:
                pending[user_id] = self._drops
                pending.move_to_end(user_id)

    def ticket(self) -> int:
        """Taken just before a log read starts: the drops that read will cover."""
        return self._drops

    def read_log(self, ticket: int, latest: int) -> None:
        """A log read that began at ``ticket`` saw ``latest`` as the newest event id."""
        with self._lock:
            if self._blocked is not None and self._blocked <= ticket:
                self._blocked = None
                self._floor = max(self._floor, latest)
            pending, resolved = self._pending, []
            while pending:
                user_id, dropped_at = next(iter(pending.items()))
                if dropped_at > ticket:
                    break
                del pending[user_id]
                resolved.append(user_id)
            if resolved:
                self._remember(latest, resolved)

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
        return (
            f"ReplicaGuard(floor={self._floor}, users={len(self._recent)}, "
            f"pending={len(self._pending)}, blocked={self._blocked is not None})"
        )


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


def log_read(reader: _ReplicaBase | None) -> Callable[[int], int]:
    """Call before a log read starts; call what it returns with the newest id it saw."""
    if reader is None:
        return _unchanged
    guard = reader.guard
    ticket = guard.ticket()

    def seen(latest: int) -> int:
        guard.read_log(ticket, latest)
        return latest

    return seen


def _unchanged(latest: int) -> int:
    return latest


class _ReplicaBase:
    """What the sync and async readers share: when to ask the replica, what to keep."""

    def __init__(self, primary: Engine | AsyncEngine, replica: Engine | AsyncEngine,
                 ctx: st.Context, cache: GuardedCache) -> None:  # fmt: skip
        if replica.dialect.name != "postgresql" or primary.dialect.name != "postgresql":
            raise ConfigurationError("a read replica needs PostgreSQL for both engines")
        self.ctx = ctx
        self.guard = ReplicaGuard()
        self.lookup = compile_replica_lookup(ctx, replica.dialect)
        self._cache = cache
        cache.add_drop_observer(self.guard.dropped)  # before any drop, from anyone
        self._down_until = -1.0
        self.served = 0  # lookups the replica answered
        self.declined = 0  # lookups it could not prove current (or failed): the primary's

    def need(self, user_id: str) -> int | None:
        """The event the replica must hold for ``user_id``; ``None``: read the primary
        (the cache is bypassed, so the read must be current; the replica failed
        recently; or a drop of the user waits for a log read)."""
        if time.monotonic() < self._down_until or not self._cache.trusted:
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
                 cache: GuardedCache) -> None:  # fmt: skip
        super().__init__(primary, replica, ctx, cache)
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
                 cache: GuardedCache) -> None:  # fmt: skip
        super().__init__(primary, replica, ctx, cache)
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
