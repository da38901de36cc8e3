"""A per-process cache of user keys that fails closed.

What it holds
    The raw 32-byte user key of recently seen users, never :class:`~sjti.UserKey`
    objects (about 175 bytes per entry, id string included, for 13-character ids; ~200
    for 36-character UUID strings), and short-lived "unknown user" markers (negative
    caching, ``negative_ttl``, default 5 s).

Bounded
    Two generations of plain dicts (a "2-generation" approximation of LRU): new entries go
    to the young generation, a hit in the old one moves the entry back to the young one,
    and when the young generation is full it becomes the old one and the previous old one
    is dropped. At most ``max_size`` entries, O(1) everything, no per-entry list node.

Coalesced
    N threads (or N asyncio tasks) missing the same user cause one source query; the
    others wait for its result.

The epoch guard
    A fill that read the source before an invalidation of that user (or a clear) arrived
    must not insert its value afterwards: every in-flight fill is marked stale by such an
    invalidation, and a stale fill refuses to insert and reads the source again. Its
    waiters get the value of the fresh read.

Fail closed
    The cache is *trusted* only while the invalidation bus says so. Untrusted (bus lost,
    never connected, or its lease ran out) the cache is bypassed entirely: every lookup
    reads through to the source, nothing is served from it and nothing is stored in it.
    On reconnect the bus subscribes first, then :meth:`KeyCache.resync` clears the cache
    and trusts it again, so a revocation committed during the outage can never be served
    from a stale entry. A bus renews a *lease* (:meth:`KeyCache.mark_trusted` with
    ``lease=``) on every answered health check, counted from when it was sent, so even
    a listener that hangs without an error stops the cache from being trusted once the
    lease runs out.

Staleness bound
    While connected, an entry lives until the bus drops it, and at most ``max_age``
    seconds (default 60 s) after the source read it came from. With an event log
    (``log=`` on the bus) a message lost while this node stayed connected (the
    *publisher* cut off after committing) is found by the bus's poll of the log within
    ``poll_interval``; without one, ``max_age`` is the bound for that case.
    :meth:`KeyCache.suspend` bypasses the cache but keeps its entries, for a bus that
    will replay the events it missed instead of clearing.

Drop observers
    :meth:`KeyCache.add_drop_observer` hears every drop before it happens, whoever asked
    for it (a bus, a store's listener, :meth:`KeyCache.clear`), with the event-log id
    that explains it when the caller knows one. A read replica's guard
    (:mod:`sjti.stores._replica`) learns from it what a replica read must prove.

A cache without a bus (one process, the store's listener calling :meth:`KeyCache.invalidate`
directly) is created with ``trusted=True``.
"""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from .._core.binding import USER_KEY_SIZE, is_record
from ..errors import BackendError, ConfigurationError

__all__ = ["BusState", "CacheStats", "DropObserver", "KeyCache", "MonotonicClock"]

MonotonicClock = Callable[[], float]
"""Seconds from an arbitrary origin that never goes backwards (``time.monotonic``)."""

DropObserver = Callable[[int | None, "tuple[str, ...] | None"], None]
"""Told ``(event_id, user_ids)`` under the cache's lock before users (``None``: everyone)
are dropped; ``event_id`` is the event-log id that explains the drop, or ``None`` when
the caller does not know one. It must be quick and must not call the cache."""

BusState = str
"""``"none"`` (no bus attached), ``"connecting"``, ``"connected"``, ``"disconnected"``,
``"closed"``."""

# An entry is one bytes object: an 8-byte deadline (float, the cache clock), followed by
# the 32-byte key; a negative entry is the deadline alone. 8 + 32 = 40 bytes of payload
# fit the same 80-byte allocation as the 32-byte key alone.
_DEADLINE: Final = struct.Struct("=d")
_NEGATIVE_LEN: Final = _DEADLINE.size
_unpack: Final = _DEADLINE.unpack_from
_MISS: Final = object()
# A fill that keeps being invalidated while it reads gives up (fails closed) after this.
_MAX_FILL_ROUNDS: Final = 8


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of the cache counters (monotonic since creation) and its state."""

    hits: int
    negative_hits: int
    misses: int
    bypasses: int  # lookups while untrusted: read through, nothing cached
    loads: int  # source queries
    coalesced: int  # lookups that waited on another caller's query
    stale_fills: int  # fills refused by the epoch guard (and read again)
    invalidations: int  # user ids dropped on request (bus message or listener)
    clears: int  # whole-cache drops ("all" messages, resyncs, trust lost)
    evictions: int  # entries dropped for room
    expirations: int  # entries found past max_age / negative_ttl
    size: int
    max_size: int
    trusted: bool
    bus_state: BusState
    bus_connects: int  # successful (re)subscriptions
    bus_disconnects: int  # connections lost (each one made the cache untrusted)


class _Flight:
    """One source query in progress for one user (threads).

    The event is made only when a second caller joins (under the cache lock), so a
    lone miss costs no synchronisation objects.
    """

    __slots__ = ("dirty", "done", "error", "value")

    def __init__(self) -> None:
        self.dirty = False
        self.done: threading.Event | None = None
        self.value: bytes | None = None
        self.error: BaseException | None = None

    def join(self) -> threading.Event:
        """Under the cache lock: the event a follower waits on."""
        if self.done is None:
            self.done = threading.Event()
        return self.done


class _AsyncFlight:
    """One source query in progress for one user (asyncio tasks of one loop)."""

    __slots__ = ("dirty", "loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.dirty = False
        self.loop = loop
        self.task: asyncio.Task[bytes | None] | None = None


def _check_secret(value: object) -> bytes | None:
    """A source returns a key record (the 32-byte secret, perhaps its device list) or None."""
    if value is None or (type(value) is bytes and len(value) == USER_KEY_SIZE):
        return value
    if is_record(value):
        return value
    raise ConfigurationError(
        f"a secret source must return a key record ({USER_KEY_SIZE} bytes, or a secret "
        "with its devices) or None"
    )


def _retrieve(task: asyncio.Task[bytes | None]) -> None:
    """Mark a fill's exception as seen even if every waiter was cancelled."""
    if not task.cancelled():
        task.exception()


class KeyCache:
    """Bounded, thread-safe cache of raw user keys with a fail-closed *trusted* state.

    ``max_size``: entries kept at most (default 100 000). ``max_age``: seconds an entry
    may be served after the source read it came from (default 60). ``negative_ttl``:
    seconds an "unknown user" answer is remembered (default 5; 0 disables). ``clock``:
    monotonic seconds (inject a fake one in tests). ``trusted``: start trusted, for a
    cache without a bus whose invalidations arrive by a direct store listener.
    """

    __slots__ = (
        "_aflights",
        "_bus_state",
        "_clock",
        "_flights",
        "_half",
        "_lock",
        "_n_bus_connects",
        "_n_bus_disconnects",
        "_n_bypasses",
        "_n_clears",
        "_n_coalesced",
        "_n_evictions",
        "_n_expirations",
        "_n_hits",
        "_n_invalidations",
        "_n_loads",
        "_n_misses",
        "_n_negative_hits",
        "_n_stale_fills",
        "_observers",
        "_old",
        "_trusted_until",
        "_young",
        "max_age",
        "max_size",
        "negative_ttl",
    )

    def __init__(
        self,
        *,
        max_size: int = 100_000,
        max_age: float = 60.0,
        negative_ttl: float = 5.0,
        clock: MonotonicClock = time.monotonic,
        trusted: bool = False,
    ) -> None:
        if not isinstance(max_size, int) or max_size < 2:
            raise ConfigurationError("max_size must be an int of at least 2")
        if not max_age > 0:
            raise ConfigurationError("max_age must be positive")
        if not negative_ttl >= 0:
            raise ConfigurationError("negative_ttl must not be negative")
        self.max_size = max_size
        self.max_age = float(max_age)
        self.negative_ttl = float(negative_ttl)
        self._clock = clock
        self._half = max_size // 2
        self._young: dict[str, bytes] = {}
        self._old: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._aflights: dict[str, _AsyncFlight] = {}
        self._observers: tuple[DropObserver, ...] = ()
        self._trusted_until = math.inf if trusted else -math.inf
        self._bus_state: BusState = "none"
        self._n_hits = 0
        self._n_negative_hits = 0
        self._n_misses = 0
        self._n_bypasses = 0
        self._n_loads = 0
        self._n_coalesced = 0
        self._n_stale_fills = 0
        self._n_invalidations = 0
        self._n_clears = 0
        self._n_evictions = 0
        self._n_expirations = 0
        self._n_bus_connects = 0
        self._n_bus_disconnects = 0

    # -- lookups ------------------------------------------------------------------------

    def get_or_load(self, user_id: str, load: Callable[[str], bytes | None]) -> bytes | None:
        """The user's 32-byte key (``None``: unknown user), from the cache or ``load``.

        Concurrent misses for one user share one ``load`` call. Untrusted: always ``load``.
        """
        # Hit path without the lock: each read is atomic, and a hit that races an
        # invalidation is the same as a hit just before it. (Hit counts may undercount
        # under contention; they are statistics.)
        now = self._clock()
        if now < self._trusted_until:
            value = self._young.get(user_id)
            if value is not None and len(value) > _NEGATIVE_LEN and now < _unpack(value)[0]:
                self._n_hits += 1
                return value[_NEGATIVE_LEN:]
        with self._lock:
            now = self._clock()
            if now >= self._trusted_until:
                self._n_bypasses += 1
                self._n_loads += 1
                flight = None
            else:
                # The hot path first: a live key in the young generation.
                value = self._young.get(user_id)
                if value is not None and len(value) > _NEGATIVE_LEN and now < _unpack(value)[0]:
                    self._n_hits += 1
                    return value[_NEGATIVE_LEN:]
                found = self._lookup(user_id, now)
                if found is not _MISS:
                    return found  # type: ignore[return-value]  # bytes | None here
                self._n_misses += 1
                flight = self._flights.get(user_id)
                if flight is not None:
                    self._n_coalesced += 1
                    done: threading.Event | None = flight.join()
                else:
                    flight = self._flights[user_id] = _Flight()
                    done = None
        if flight is None:
            return _check_secret(load(user_id))
        if done is None:
            return self._lead(user_id, flight, load)
        done.wait()
        if flight.error is not None:
            raise flight.error
        return flight.value

    async def aget_or_load(
        self, user_id: str, load: Callable[[str], Awaitable[bytes | None]]
    ) -> bytes | None:
        """:meth:`get_or_load` for asyncio: N tasks missing one user await one ``load``.

        The query runs in its own task: cancelling a waiter never cancels it for the others.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            now = self._clock()
            if now >= self._trusted_until:
                self._n_bypasses += 1
                self._n_loads += 1
                flight = None
            else:
                found = self._lookup(user_id, now)
                if found is not _MISS:
                    return found  # type: ignore[return-value]  # bytes | None here
                self._n_misses += 1
                flight = self._aflights.get(user_id)
                if flight is None:
                    flight = self._aflights[user_id] = _AsyncFlight(loop)
                    task = flight.task = loop.create_task(self._alead(user_id, flight, load))
                    task.add_done_callback(_retrieve)
                elif flight.loop is loop and flight.task is not None:
                    self._n_coalesced += 1
                    task = flight.task
                else:  # another event loop's query cannot be awaited here: read, don't store
                    self._n_loads += 1
                    flight = None
        if flight is None:
            return _check_secret(await load(user_id))
        return await asyncio.shield(task)

    def _lookup(self, user_id: str, now: float) -> object:
        """Under the lock: the cached key, ``None`` (known unknown) or ``_MISS``."""
        value = self._young.get(user_id)
        if value is None:
            value = self._old.get(user_id)
            if value is None:
                return _MISS
            del self._old[user_id]
            if now < _unpack(value)[0]:
                self._put(user_id, value)  # recently used again: back to the young generation
        if now >= _unpack(value)[0]:
            self._young.pop(user_id, None)
            self._n_expirations += 1
            return _MISS
        if len(value) == _NEGATIVE_LEN:
            self._n_negative_hits += 1
            return None
        self._n_hits += 1
        return value[_NEGATIVE_LEN:]

    def _put(self, user_id: str, value: bytes) -> None:
        """Under the lock: insert into the young generation, rotating when it is full."""
        young = self._young
        if user_id not in young and len(young) >= self._half:
            self._n_evictions += len(self._old)
            self._old = young
            self._young = young = {}
        young[user_id] = value

    def _store(self, user_id: str, value: bytes | None, read_at: float) -> None:
        """Under the lock: remember a fresh source answer if the cache is trusted."""
        if self._clock() >= self._trusted_until:
            return
        if value is None:
            if self.negative_ttl <= 0:
                return
            entry = _DEADLINE.pack(read_at + self.negative_ttl)
        else:
            entry = _DEADLINE.pack(read_at + self.max_age) + value
        self._old.pop(user_id, None)
        self._put(user_id, entry)

    def _lead(
        self, user_id: str, flight: _Flight, load: Callable[[str], bytes | None]
    ) -> bytes | None:
        # Followers join only while the flight is in ``_flights``; it leaves under the
        # lock after ``value``/``error`` is set, so the event seen then is the last one.
        try:
            for _ in range(_MAX_FILL_ROUNDS):
                read_at = self._clock()
                value = _check_secret(load(user_id))
                with self._lock:
                    self._n_loads += 1
                    if flight.dirty:  # invalidated while we read: do not insert, read again
                        flight.dirty = False
                        self._n_stale_fills += 1
                        continue
                    self._store(user_id, value, read_at)
                    flight.value = value
                    if self._flights.get(user_id) is flight:
                        del self._flights[user_id]
                    done = flight.done
                if done is not None:
                    done.set()
                return value
            raise BackendError("cache fill kept racing invalidations")
        except BaseException as exc:
            with self._lock:
                flight.error = exc
                if self._flights.get(user_id) is flight:
                    del self._flights[user_id]
                done = flight.done
            if done is not None:
                done.set()
            raise

    async def _alead(
        self,
        user_id: str,
        flight: _AsyncFlight,
        load: Callable[[str], Awaitable[bytes | None]],
    ) -> bytes | None:
        try:
            for _ in range(_MAX_FILL_ROUNDS):
                read_at = self._clock()
                value = _check_secret(await load(user_id))
                with self._lock:
                    self._n_loads += 1
                    if flight.dirty:
                        flight.dirty = False
                        self._n_stale_fills += 1
                        continue
                    self._store(user_id, value, read_at)
                    if self._aflights.get(user_id) is flight:
                        del self._aflights[user_id]
                return value
            raise BackendError("cache fill kept racing invalidations")
        finally:
            with self._lock:
                if self._aflights.get(user_id) is flight:
                    del self._aflights[user_id]

    # -- invalidation and trust ---------------------------------------------------------

    def add_drop_observer(self, observer: DropObserver) -> None:
        """Tell ``observer`` of every drop from now on, before it happens (see module doc)."""
        with self._lock:
            self._observers = (*self._observers, observer)

    def invalidate(self, user_ids: Iterable[str] | None, *, event: int | None = None) -> None:
        """Drop these users (``None``: everyone). Fits ``store.add_listener`` directly.

        ``event``: the event-log id that explains the drop, when the caller knows it (a
        bus replaying the log); drop observers hear it.
        """
        if user_ids is None:
            self.clear(event=event)
            return
        with self._lock:
            if self._observers:
                user_ids = tuple(user_ids)
                for observer in self._observers:
                    observer(event, user_ids)
            young, old, flights, aflights = self._young, self._old, self._flights, self._aflights
            count = 0
            for user_id in user_ids:
                count += 1
                young.pop(user_id, None)
                old.pop(user_id, None)
                flight = flights.get(user_id)
                if flight is not None:
                    flight.dirty = True
                aflight = aflights.get(user_id)
                if aflight is not None:
                    aflight.dirty = True
            self._n_invalidations += count

    def clear(self, *, event: int | None = None) -> None:
        """Drop every entry; fills in progress will not insert what they read. ``event``:
        as :meth:`invalidate` (a bus starting at the log's newest id passes it)."""
        with self._lock:
            self._clear_locked(event)

    def _clear_locked(self, event: int | None = None) -> None:
        for observer in self._observers:
            observer(event, None)
        self._young = {}
        self._old = {}
        for flight in self._flights.values():
            flight.dirty = True
        for aflight in self._aflights.values():
            aflight.dirty = True
        self._n_clears += 1

    def mark_untrusted(self) -> None:
        """Stop trusting the cache (bus lost): bypass it and drop everything in it."""
        with self._lock:
            self._trusted_until = -math.inf
            self._clear_locked()

    def suspend(self) -> None:
        """Stop trusting the cache but keep its entries (bus lost, event log available).

        Bypassed like :meth:`mark_untrusted`; the entries wait for the bus to replay the
        events it missed (dropping exactly the users they name) before it trusts again.
        In-flight fills are marked stale: what they read must not land while untrusted.
        """
        with self._lock:
            self._trusted_until = -math.inf
            for flight in self._flights.values():
                flight.dirty = True
            for aflight in self._aflights.values():
                aflight.dirty = True

    def mark_trusted(self, lease: float | None = None, *, since: float | None = None) -> None:
        """Trust the cache for ``lease`` seconds from ``since`` (a reading of :attr:`clock`;
        default: now), or, ``lease=None``, until told otherwise.

        A bus calls this on every answered health check, with ``since`` the time the check
        went out: a deadline fixed by the caller's own clock reading, so however long the
        caller is descheduled before this call, the trust it grants does not grow. A late
        answer never shortens trust an earlier one granted (:meth:`suspend` does that). It
        never clears. Only call it when no invalidation can have been missed since the
        last clear.
        """
        with self._lock:
            self._trusted_until = max(self._trusted_until, self._deadline(lease, since))

    def resync(self, lease: float | None = None, *, since: float | None = None) -> None:
        """Clear, then trust (as :meth:`mark_trusted`): what a bus calls once subscribed."""
        with self._lock:
            self._clear_locked()
            self._trusted_until = self._deadline(lease, since)

    def _deadline(self, lease: float | None, since: float | None) -> float:
        if lease is None:
            return math.inf
        return (self._clock() if since is None else since) + lease

    @property
    def clock(self) -> MonotonicClock:
        """The clock of the trust lease and entry ages (a bus reads its times from it)."""
        return self._clock

    @property
    def trusted(self) -> bool:
        return self._clock() < self._trusted_until

    # -- bus bookkeeping and metrics ----------------------------------------------------

    def note_bus_state(self, state: BusState) -> None:
        """Record the attached bus's state (for metrics); counts (dis)connections."""
        with self._lock:
            if state == "connected":
                self._n_bus_connects += 1
            elif state == "disconnected" and self._bus_state == "connected":
                self._n_bus_disconnects += 1
            self._bus_state = state

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._n_hits,
                negative_hits=self._n_negative_hits,
                misses=self._n_misses,
                bypasses=self._n_bypasses,
                loads=self._n_loads,
                coalesced=self._n_coalesced,
                stale_fills=self._n_stale_fills,
                invalidations=self._n_invalidations,
                clears=self._n_clears,
                evictions=self._n_evictions,
                expirations=self._n_expirations,
                bus_connects=self._n_bus_connects,
                bus_disconnects=self._n_bus_disconnects,
                size=len(self._young) + len(self._old),
                max_size=self.max_size,
                trusted=self._clock() < self._trusted_until,
                bus_state=self._bus_state,
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._young) + len(self._old)

    def __contains__(self, user_id: object) -> bool:
        """Whether an entry (key or negative, possibly expired) is held for ``user_id``."""
        with self._lock:
            return user_id in self._young or user_id in self._old

    def __repr__(self) -> str:
        state = "trusted" if self.trusted else "untrusted"
        return f"KeyCache(size={len(self)}, max_size={self.max_size}, {state})"
