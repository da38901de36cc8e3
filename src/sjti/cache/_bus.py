"""What every invalidation bus shares: the executors of the listen plan.

The plan itself (connect, catch up from the event log, listen, ping, poll, heartbeat,
fail closed, back off) is written once in :mod:`sjti.cache._follow`; here a thread
(:class:`ThreadedBus`) or an asyncio task (:class:`AsyncBus`) runs its operations. A
transport (Redis pub/sub, PostgreSQL LISTEN) only opens a *session* that is subscribed
when ``open`` returns, yields payloads from ``poll`` and answers ``ping``.

Every answered ping renews the cache's trust lease: ``2 x health_check_interval``
counted from when that ping went out, since an answer proves only what the server pushed
before it (messages renew nothing). Any error, or no fresh answer for a lease, makes the
cache bypassed at once; the lease also covers a listener that hangs without raising. The
link itself is declared lost only when a ping is still unanswered at a read begun a lease
after it: a listener that merely ran late (a busy CPU) is not mistaken for a dead server.

With an event log (``log=``, a SQL store) a bus also keeps a watermark, replays what it
missed after an outage instead of clearing, polls ``max(id)`` every ``poll_interval``,
heartbeats its watermark (acknowledged revocation) and republishes events nobody
published. One bus per cache: two buses renewing one cache's lease could re-trust it while
the other one is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import socket
import threading
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Protocol, Self

from .._core.invalidation import decode_invalidation, encode_event, encode_invalidation
from ..errors import ConfigurationError
from ..stores.base import RevocationEvent
from . import _follow as follow
from .keycache import BusState, KeyCache

__all__ = [  # noqa: RUF022 - plain sorted(), the order tests check (as for sjti)
    "AsyncBus",
    "AsyncSession",
    "DEFAULT_PG_CHANNEL",
    "DEFAULT_REDIS_CHANNEL",
    "SyncSession",
    "ThreadedBus",
    "backoff_delay",
]

DEFAULT_REDIS_CHANNEL: Final = "sjti:revocations"
DEFAULT_PG_CHANNEL: Final = "sjti_revocations"

logger = logging.getLogger("sjti.cache")

HealthCheckFailed = follow.HealthCheckFailed
_TICK: Final = follow.TICK


class SyncSession(Protocol):
    def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        """Payloads received within ``timeout``, and how many pings were answered."""
        ...

    def ping(self) -> bool:
        """Send a health check; ``True`` if already answered (a round trip), ``False`` if
        the answer will come through ``poll``."""
        ...

    def close(self) -> None: ...


class AsyncSession(Protocol):
    async def poll(self, timeout: float) -> tuple[list[str | bytes], int]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def backoff_delay(failures: int, minimum: float, maximum: float) -> float:
    """Exponential backoff with jitter: ``minimum * 2**(failures-1)``, capped, x[0.5, 1]."""
    base = min(maximum, minimum * 2.0 ** max(0, min(failures - 1, 30)))
    return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def apply_payload(cache: KeyCache, payload: str | bytes) -> None:
    cache.invalidate(decode_invalidation(payload))


def encode(user_ids: Sequence[str] | None) -> list[str]:
    return encode_invalidation(None if user_ids is None else list(user_ids))


def encode_hint(event: RevocationEvent) -> str:
    return encode_event(event.id, event.user_ids)


def _node_info() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _BusBase:
    def __init__(
        self,
        cache: KeyCache,
        *,
        health_check_interval: float,
        reconnect_min: float,
        reconnect_max: float,
        name: str,
        log: object | None = None,
        poll_interval: float = 1.0,
        node_id: str | None = None,
    ) -> None:
        if not health_check_interval > 0:
            raise ConfigurationError("health_check_interval must be positive")
        if not 0 < reconnect_min <= reconnect_max:
            raise ConfigurationError("need 0 < reconnect_min <= reconnect_max")
        if not 0 < poll_interval <= 60:
            raise ConfigurationError("poll_interval must be in (0, 60] seconds")
        self.cache = cache
        self.health_check_interval = float(health_check_interval)
        self.lease = 2.0 * self.health_check_interval
        self.reconnect_min = float(reconnect_min)
        self.reconnect_max = float(reconnect_max)
        self.name = name
        self.log = log
        self.node_id = node_id or uuid.uuid4().hex[:16]
        self.publish_failures = 0  # relays that did not reach the bus (the log keeps them)
        self._published: list[int] = []  # event ids this node relayed, to mark in the log
        self._published_lock = threading.Lock()
        self._state: BusState = "none"
        self.follower = follow.Follower(
            cache,
            has_log=log is not None,
            health_check_interval=self.health_check_interval,
            poll_interval=float(poll_interval),
            backoff=lambda failures: backoff_delay(
                failures, self.reconnect_min, self.reconnect_max
            ),
            clock=cache.clock,  # the trust lease's deadlines are read from one clock
            on_state=self._on_state,
        )
        self._init_runner()

    def _init_runner(self) -> None:
        """Subclasses set up their thread or task state here."""

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures, self.reconnect_min, self.reconnect_max)

    @property
    def state(self) -> BusState:
        """``none`` (not started), ``connecting``, ``connected``, ``disconnected``, ``closed``."""
        return self._state

    @property
    def watermark(self) -> int | None:
        """The last event id applied from the log (``None``: no log, or not yet synced)."""
        return self.follower.watermark

    def _set_state(self, state: BusState) -> None:
        self._state = state
        self.cache.note_bus_state(state)

    def _on_state(self, state: str) -> None:
        if state == "connected":
            self._set_state("connected")
            return
        if self._state == "connected":
            logger.warning(
                "invalidation bus %s lost (%s); cache bypassed until resynchronised",
                self.name,
                state.partition(":")[2],
            )
        self._set_state("disconnected")

    def _claim_cache(self) -> None:
        if self.cache.stats().bus_state not in ("none", "closed"):
            raise ConfigurationError("this KeyCache already has a bus")
        self.cache.mark_untrusted()  # not trusted before the first subscription
        self._set_state("connecting")

    def _relayed(self, event: RevocationEvent) -> None:
        with self._published_lock:
            self._published.append(event.id)

    def _take_relayed(self) -> list[int]:
        with self._published_lock:
            taken, self._published = self._published, []
        return taken

    def _relay_failed(self, exc: BaseException) -> None:
        self.publish_failures += 1
        logger.warning(
            "revocation event not published on %s (%s); it stays in the log and is "
            "relayed again, nodes also find it by polling",
            self.name,
            type(exc).__name__,
        )


class ThreadedBus(_BusBase):
    """Base of the synchronous buses: one daemon thread executes the listen plan."""

    def _init_runner(self) -> None:
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._relay_thread: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[RevocationEvent] = queue.SimpleQueue()
        self._session: SyncSession | None = None

    def _open(self) -> SyncSession:
        """Connect and subscribe; return only once the server confirmed the subscription."""
        raise NotImplementedError

    def publish_event(self, event: RevocationEvent) -> int:
        """Send the hint for ``event``; raises on failure (see :meth:`relay`)."""
        raise NotImplementedError

    def relay(self, event: RevocationEvent) -> None:
        """A store event listener: queue the event for publishing; never blocks, never
        raises. A thread of this bus publishes it; a failure is logged and counted
        (``publish_failures``) and the event stays unpublished in the log, where any
        node's bus relays it again once the bus is back (every node's poll finds it
        meanwhile). The revoking request never waits on the bus: a hung Redis cannot hold
        a logout."""
        self._outbox.put(event)

    def _relay_loop(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._outbox.get(timeout=_TICK)
            except queue.Empty:
                continue
            try:
                self.publish_event(event)
            except Exception as exc:  # the database is the truth; the bus is a hint
                self._relay_failed(exc)
            else:
                self._relayed(event)

    def start(self) -> Self:
        """Start listening in a daemon thread (the cache is trusted once subscribed)."""
        if self._thread is not None:
            raise ConfigurationError("bus already started")
        self._claim_cache()
        self._thread = threading.Thread(target=self._run, name=f"sjti-{self.name}", daemon=True)
        self._thread.start()
        self._relay_thread = threading.Thread(
            target=self._relay_loop, name=f"sjti-relay-{self.name}", daemon=True
        )
        self._relay_thread.start()
        return self

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until subscribed (and the cache trusted), or ``timeout``; ``True`` if so."""
        return self._connected.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening; the cache is untrusted from now on."""
        self._stop.set()
        for thread in (self._thread, self._relay_thread):
            if thread is not None:
                thread.join(timeout)
        self.cache.mark_untrusted()
        self._connected.clear()
        self._set_state("closed")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        plan = self.follower.run()
        try:
            op = next(plan)
            while not self._stop.is_set():
                try:
                    result = self._execute(op)
                except Exception as exc:  # the plan decides: fail closed, back off
                    op = plan.throw(exc)
                else:
                    op = plan.send(result)
        finally:
            plan.close()
            self._connected.clear()
            self.cache.mark_untrusted()
            self._close_session()
            log: Any = self.log
            if log is not None:
                with contextlib.suppress(Exception):  # best effort: acks stop waiting for us
                    log.forget_node(self.node_id)

    def _live(self) -> SyncSession:
        if self._session is None:
            raise ConnectionError("no session")
        return self._session

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):  # closing a broken link may fail too
                session.close()

    def _execute(self, op: follow.Op) -> object:
        log: Any = self.log
        match op:
            case follow.Receive(timeout):
                return self._live().poll(timeout)
            case follow.Ping():
                return self._live().ping()
            case follow.Latest():
                return log.latest_event_id()
            case follow.ReadLog(after):
                return log.events_after(after)
            case follow.Heartbeat(watermark):
                log.heartbeat(self.node_id, watermark, _node_info())
            case follow.Republish(older_than):
                relayed = self._take_relayed()
                if relayed:
                    log.mark_published(relayed)
                pending = log.pending_events(older_than)
                for event in pending:
                    self.publish_event(event)
                if pending:
                    log.mark_published([event.id for event in pending])
            case follow.Connect():
                self._close_session()
                self._session = self._open()
            case follow.Disconnect():
                self._close_session()
            case follow.Connected(value):
                (self._connected.set if value else self._connected.clear)()
            case follow.Sleep(seconds):
                self._stop.wait(seconds)
        return None


class AsyncBus(_BusBase):
    """Base of the asyncio buses: one task executes the listen plan."""

    def _init_runner(self) -> None:
        self._connected: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[RevocationEvent] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: AsyncSession | None = None

    async def _open(self) -> AsyncSession:
        raise NotImplementedError

    async def publish_event(self, event: RevocationEvent) -> int:
        raise NotImplementedError

    def relay(self, event: RevocationEvent) -> None:
        """A store event listener (called synchronously, from any thread): queue the event
        for this bus's relay task; never blocks, never raises (see
        :meth:`ThreadedBus.relay`)."""
        if self._loop is not None and self._outbox is not None:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, event)

    async def _relay_loop(self, outbox: asyncio.Queue[RevocationEvent]) -> None:
        while True:
            event = await outbox.get()
            try:
                await self.publish_event(event)
            except Exception as exc:  # the database is the truth; the bus is a hint
                self._relay_failed(exc)
            else:
                self._relayed(event)

    def start(self) -> Self:
        """Start the listen task on the running event loop."""
        if self._task is not None:
            raise ConfigurationError("bus already started")
        self._claim_cache()
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        self._outbox = asyncio.Queue()
        self._task = self._loop.create_task(self._run(self._connected))
        self._relay_task = self._loop.create_task(self._relay_loop(self._outbox))
        return self

    async def wait_connected(self, timeout: float | None = None) -> bool:
        if self._connected is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the listen task; the cache is untrusted from now on."""
        for task in (self._relay_task, self._task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
        self._relay_task = self._task = None
        self.cache.mark_untrusted()
        if self._connected is not None:
            self._connected.clear()
        self._set_state("closed")

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, connected: asyncio.Event) -> None:
        plan = self.follower.run()
        try:
            op = next(plan)
            while True:
                try:
                    result = await self._execute(op, connected)
                except Exception as exc:  # the plan decides: fail closed, back off
                    op = plan.throw(exc)
                else:
                    op = plan.send(result)
        finally:
            plan.close()
            connected.clear()
            self.cache.mark_untrusted()
            await self._close_session()
            log: Any = self.log
            if log is not None:
                with contextlib.suppress(Exception):  # best effort: acks stop waiting for us
                    await asyncio.shield(log.forget_node(self.node_id))

    def _live(self) -> AsyncSession:
        if self._session is None:
            raise ConnectionError("no session")
        return self._session

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):  # a broken link may fail to close
                await asyncio.shield(session.close())

    async def _execute(self, op: follow.Op, connected: asyncio.Event) -> object:
        log: Any = self.log
        match op:
            case follow.Receive(timeout):
                return await self._live().poll(timeout)
            case follow.Ping():
                return await self._live().ping()
            case follow.Latest():
                return await log.latest_event_id()
            case follow.ReadLog(after):
                return await log.events_after(after)
            case follow.Heartbeat(watermark):
                await log.heartbeat(self.node_id, watermark, _node_info())
            case follow.Republish(older_than):
                relayed = self._take_relayed()
                if relayed:
                    await log.mark_published(relayed)
                pending = await log.pending_events(older_than)
                for event in pending:
                    await self.publish_event(event)
                if pending:
                    await log.mark_published([event.id for event in pending])
            case follow.Connect():
                await self._close_session()
                self._session = await self._open()
            case follow.Disconnect():
                await self._close_session()
            case follow.Connected(value):
                (connected.set if value else connected.clear)()
            case follow.Sleep(seconds):
                await asyncio.sleep(seconds)
        return None
