"""What a node's bus does, written once: a plan (a generator of operations) that the
threaded and the asyncio bus only execute. No I/O here; the clock is passed in.

The plan, per connection::

    Connect (subscribed, confirmed)
      -> catch up from the event log: replay every event after the watermark
         (or, first time / gap pruned: clear and start at the log's newest id)
      -> trust the cache for one lease from the Connect; Heartbeat(watermark)
      -> listen: Receive payloads; Ping every health check (each answer trusts for a
         lease from when its ping went out); every poll interval
         Latest (the cheap max(id)), catch up if it moved, Heartbeat, Republish
    any error -> the cache is bypassed at once (kept, for the replay) -> Sleep(backoff)

Messages are hints (:func:`sjti._core.invalidation.decode_notice`): a hint for a new
event makes the node read the log after its watermark, and the log alone says whom to
drop and moves the watermark (a forged hint costs a read, never a skipped event). Event
ids are gapless and commit in order (:mod:`sjti.stores._eventlog`), so "read after N"
never skips an event that commits later.
Without an event log the plan falls back to the first-generation rule: clear on every
(re)connect, apply what messages say, trust while the bus is alive.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from .._core.invalidation import decode_notice
from ..stores.base import EventPage, RevocationEvent
from .keycache import KeyCache

__all__ = [
    "Connect",
    "Connected",
    "Disconnect",
    "EventLog",
    "Follower",
    "Heartbeat",
    "Latest",
    "Op",
    "Ping",
    "ReadLog",
    "Receive",
    "Republish",
    "Sleep",
]

logger = logging.getLogger("sjti.cache")

TICK: Final = 0.1  # longest a listener waits before looking at its clock again
HEARTBEAT_MAX: Final = 1.0  # seconds between heartbeats at most (NODE_TTL is 5 s)


class EventLog(Protocol):
    """The event-log side of a SQL store, as a bus uses it (sync; async twin below)."""

    def events_after(self, after: int, limit: int = ...) -> EventPage: ...

    def latest_event_id(self) -> int: ...

    def heartbeat(self, node_id: str, watermark: int, info: str | None = None) -> None: ...

    def pending_events(self, older_than: float = ...) -> list[RevocationEvent]: ...

    def mark_published(self, event_ids: Sequence[int]) -> None: ...

    def forget_node(self, node_id: str) -> None: ...


class AsyncEventLog(Protocol):
    async def events_after(self, after: int, limit: int = ...) -> EventPage: ...

    async def latest_event_id(self) -> int: ...

    async def heartbeat(self, node_id: str, watermark: int, info: str | None = None) -> None: ...

    async def pending_events(self, older_than: float = ...) -> list[RevocationEvent]: ...

    async def mark_published(self, event_ids: Sequence[int]) -> None: ...

    async def forget_node(self, node_id: str) -> None: ...


class HealthCheckFailed(Exception):
    """No proof of liveness within the lease."""


# -- the operations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """Close any previous session, open one that is subscribed (confirmed by the server)."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the session, if any."""


@dataclass(frozen=True, slots=True)
class Connected:
    """Tell waiters (``wait_connected``) whether the bus is subscribed and trusted."""

    value: bool


@dataclass(frozen=True, slots=True)
class Receive:
    """-> ``(payloads, answers)``: what arrived within ``timeout`` seconds, and how many
    pings were answered meanwhile (in the order they were sent)."""

    timeout: float


@dataclass(frozen=True, slots=True)
class Ping:
    """-> ``True`` if already answered (a round trip); ``False``: the answer comes through
    a later :class:`Receive`."""


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class ReadLog:
    """-> :class:`EventPage`: events after ``after``."""

    after: int


@dataclass(frozen=True, slots=True)
class Latest:
    """-> the newest event id."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Record this node's watermark in the registry (acknowledged revocation)."""

    watermark: int


@dataclass(frozen=True, slots=True)
class Republish:
    """Mark what this node published; publish events nobody did for ``older_than`` s."""

    older_than: float


Op = (
    Connect
    | Disconnect
    | Connected
    | Receive
    | Ping
    | Sleep
    | ReadLog
    | Latest
    | Heartbeat
    | Republish
)
Plan = Generator[Op, Any, None]


class Follower:
    """The plan's state: the cache it keeps current, the watermark, the timings.

    ``clock`` must be the cache's clock (:attr:`KeyCache.clock`): trust deadlines are
    computed from its readings. ``on_state`` hears the bus's state changes (metrics,
    logs).
    """

    def __init__(
        self,
        cache: KeyCache,
        *,
        has_log: bool,
        health_check_interval: float,
        poll_interval: float,
        backoff: Callable[[int], float],
        clock: Callable[[], float],
        on_state: Callable[[str], None],
    ) -> None:
        self.cache = cache
        self.has_log = has_log
        self.interval = health_check_interval
        self.lease = 2.0 * health_check_interval
        self.poll_interval = poll_interval
        self.backoff = backoff
        self.clock = clock
        self.on_state = on_state
        # Heartbeats on their own schedule, well inside the registry's NODE_TTL whatever the
        # poll interval: a live node must never look dead to an acknowledged revocation.
        self.heartbeat_interval = min(poll_interval, HEARTBEAT_MAX)
        self.beat_at = -math.inf
        self.watermark: int | None = None  # None: never synchronised with the log
        self.replayed = 0  # events applied from the log (not from a message)
        self.cleared = 0  # times the log could not be replayed (first sync, pruned gap)

    # -- the whole life of a bus ------------------------------------------------------

    def run(self) -> Plan:
        failures = 0
        while True:
            try:
                opened = self.clock()
                yield Connect()
                if self.has_log:
                    yield from self._catch_up()
                    self._renew(opened)  # the subscription is the first answer
                else:
                    # Subscribed first; now clear and trust: nothing committed before
                    # this point can be served stale, and everything after reaches us.
                    self.cache.resync(self.lease, since=opened)
                self.on_state("connected")
                yield Connected(True)
                failures = 0
                yield from self._listen()
            except Exception as exc:  # thrown in by the executor: we may have missed messages
                self._lose(exc)
                yield Connected(False)
            yield Disconnect()
            failures += 1
            yield Sleep(self.backoff(failures))

    def _lose(self, exc: BaseException) -> None:
        if self.has_log:
            self.cache.suspend()  # bypassed now; entries kept for the replay
        else:
            self.cache.mark_untrusted()
        self.on_state("disconnected:" + type(exc).__name__)

    # -- keeping up with the log ------------------------------------------------------

    def _catch_up(self) -> Generator[Op, Any, None]:
        """Apply every event after the watermark (clear if they cannot all be read)."""
        if self.watermark is None:
            latest: int = yield Latest()
            self.cache.clear(event=latest)  # nothing it held was checked against the log
            self.watermark = latest
            self.cleared += 1
        else:
            while True:
                page: EventPage = yield ReadLog(self.watermark)
                if self._gap(page):
                    self._start_over(page.latest)
                    break
                for event in page.events:
                    if event.id != self.watermark + 1:
                        # Ids are gapless: a missing one was pruned (or read across a
                        # prune). We cannot know whom it named: clear.
                        self._start_over(page.latest)
                        break
                    self.cache.invalidate(event.user_ids, event=event.id)
                    self.watermark = event.id
                    self.replayed += 1
                if not page.events or self.watermark >= page.latest:
                    break
        self.beat_at = self.clock()
        yield Heartbeat(self.watermark)

    def _start_over(self, latest: int) -> None:
        self.cache.clear(event=latest)
        self.watermark = latest
        self.cleared += 1

    def _mark(self) -> int:
        if self.watermark is None:  # only reachable after a catch-up set it
            raise RuntimeError("not synchronised with the event log")
        return self.watermark

    def _gap(self, page: EventPage) -> bool:
        """Events after the watermark were pruned, or the log went backwards (restored)."""
        mark = self._mark()
        if page.latest < mark:
            return True
        pruned = page.oldest is not None and page.oldest > mark + 1
        return pruned and page.latest > mark

    def _apply(self, payload: str | bytes) -> Generator[Op, Any, None]:
        notice = decode_notice(payload)
        if not self.has_log or notice.event is None:
            # No event id (a version-1 message, an unreadable one): drop observers hear the
            # drop unexplained. None: unreadable or "all": drop everything.
            self.cache.invalidate(notice.users)
            return
        if notice.event <= self._mark():
            return  # already applied (a replay or a second relay got there first)
        # A hint only says "read the log": the users are dropped from what the log says,
        # once, and only the log moves the watermark. A forged or early hint costs a read;
        # it can neither make this node skip the real event nor drop anyone.
        yield from self._catch_up()

    # -- listening --------------------------------------------------------------------

    def _listen(self) -> Generator[Op, Any, None]:
        clock = self.clock
        start = clock()
        next_ping = start + self.interval
        next_poll = start + self.poll_interval
        # Pings still without an answer, oldest first: (before the write, after it).
        pending: deque[tuple[float, float]] = deque()
        while True:
            now = clock()
            if now >= next_ping:
                next_ping = now + self.interval
                sent = clock()
                if (yield Ping()):
                    pending.clear()
                    self._renew(sent)
                else:
                    pending.append((sent, clock()))
            if self.has_log and now >= next_poll:
                next_poll = now + self.poll_interval
                yield from self._poll()
            elif self.has_log and now >= self.beat_at + self.heartbeat_interval:
                self.beat_at = now
                yield Heartbeat(self._mark())
            soonest = (
                min(next_ping, next_poll, self.beat_at + self.heartbeat_interval)
                if self.has_log
                else next_ping
            )
            looked_at = clock()
            payloads, answers = yield Receive(min(TICK, max(0.0, soonest - looked_at)))
            for payload in payloads:
                yield from self._apply(payload)
            answered = None
            for _ in range(min(int(answers), len(pending))):
                answered = pending.popleft()  # answers come back in the order pings went
            if answered is not None:
                self._renew(answered[0])
            if pending and looked_at - pending[0][1] > self.lease:
                # Judged on what the server did, never on how late this thread ran: the
                # read began a full lease after the ping went out, so an answer sent in
                # time was already waiting to be read, however starved we were. A slow
                # CPU only lets the cache's own lease lapse (bypass, fail closed) until
                # a fresh answer renews it; it never drops the link and forces a resync.
                raise HealthCheckFailed()

    def _renew(self, since: float) -> None:
        """Trust the cache for a lease from ``since``, when the answered request went out.

        An answer proves only that everything the server pushed before answering has been
        read; what it pushed later may still be on its way (a stalled path), however late
        the answer itself was read. So the lease runs from the request, never from the
        read, and messages (hints) renew nothing: a hint read late proves nothing about
        the ones behind it.
        """
        self.cache.mark_trusted(self.lease, since=since)  # ``clock`` is the cache's clock

    def _poll(self) -> Generator[Op, Any, None]:
        """The one gap pub/sub cannot see: an event committed but never published."""
        latest: int = yield Latest()
        mark = self._mark()
        if latest != mark:
            if latest > mark:
                logger.info("event log ahead of the bus by %d; replaying", latest - mark)
            yield from self._catch_up()
        else:
            self.beat_at = self.clock()
            yield Heartbeat(mark)
        yield Republish(max(1.0, self.poll_interval))
