"""What every invalidation bus shares: the listen loop, health checks, reconnects, resync.

A transport (Redis pub/sub, PostgreSQL LISTEN) only opens a *session* that is subscribed
when ``open`` returns, yields payloads from ``poll`` and answers ``ping``. The loop here:

1. open a session (subscribed and confirmed by the server), **then** ``cache.resync``:
   clear, then trust for one lease; state ``connected``;
2. apply every payload to the cache (drop the named users, or everything);
3. ping every ``health_check_interval``; every proof of liveness (a pong, a message)
   renews the cache's lease (``2 x health_check_interval``);
4. on any error, or when no proof of liveness came for a lease, ``cache.mark_untrusted``
   at once (the cache is bypassed: every lookup reads through), then reconnect with
   exponential backoff and go to 1.

The lease also covers a listener that hangs without raising: the cache stops trusting
itself when the lease runs out, whatever the listener thread is doing.

One bus per cache: two buses renewing one cache's lease could re-trust it while the
other one is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Protocol, Self

from .._core.invalidation import decode_invalidation, encode_invalidation
from ..errors import ConfigurationError
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

_TICK: Final = 0.1  # longest a listener waits before looking at its stop flag and clock


class HealthCheckFailed(Exception):
    """No proof of liveness within the lease."""


class SyncSession(Protocol):
    def poll(self, timeout: float) -> tuple[list[str | bytes], bool]:
        """Payloads received within ``timeout``, and whether the link proved alive."""
        ...

    def ping(self) -> bool:
        """Send a health check; ``True`` if it already proved the link alive."""
        ...

    def close(self) -> None: ...


class AsyncSession(Protocol):
    async def poll(self, timeout: float) -> tuple[list[str | bytes], bool]: ...

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


class _BusBase:
    def __init__(
        self,
        cache: KeyCache,
        *,
        health_check_interval: float,
        reconnect_min: float,
        reconnect_max: float,
        name: str,
    ) -> None:
        if not health_check_interval > 0:
            raise ConfigurationError("health_check_interval must be positive")
        if not 0 < reconnect_min <= reconnect_max:
            raise ConfigurationError("need 0 < reconnect_min <= reconnect_max")
        self.cache = cache
        self.health_check_interval = float(health_check_interval)
        self.lease = 2.0 * self.health_check_interval
        self.reconnect_min = float(reconnect_min)
        self.reconnect_max = float(reconnect_max)
        self.name = name
        self._state: BusState = "none"
        self._init_runner()

    def _init_runner(self) -> None:
        """Subclasses set up their thread or task state here."""

    @property
    def state(self) -> BusState:
        """``none`` (not started), ``connecting``, ``connected``, ``disconnected``, ``closed``."""
        return self._state

    def _set_state(self, state: BusState) -> None:
        self._state = state
        self.cache.note_bus_state(state)

    def _claim_cache(self) -> None:
        if self.cache.stats().bus_state not in ("none", "closed"):
            raise ConfigurationError("this KeyCache already has a bus")
        self.cache.mark_untrusted()  # not trusted before the first subscription
        self._set_state("connecting")

    def _lost(self, exc: BaseException) -> None:
        self.cache.mark_untrusted()
        if self._state == "connected":
            logger.warning(
                "invalidation bus %s lost (%s); cache bypassed until resynchronised",
                self.name,
                type(exc).__name__,
            )
        self._set_state("disconnected")

    def _renew(self) -> None:
        self.cache.mark_trusted(self.lease)


class ThreadedBus(_BusBase):
    """Base of the synchronous buses: one daemon thread runs the listen loop."""

    def _init_runner(self) -> None:
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> SyncSession:
        """Connect and subscribe; return only once the server confirmed the subscription."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start listening in a daemon thread (the cache is trusted once subscribed)."""
        if self._thread is not None:
            raise ConfigurationError("bus already started")
        self._claim_cache()
        self._thread = threading.Thread(target=self._run, name=f"sjti-{self.name}", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until subscribed (and the cache trusted), or ``timeout``; ``True`` if so."""
        return self._connected.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening; the cache is untrusted from now on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
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
        failures = 0
        while not self._stop.is_set():
            session: SyncSession | None = None
            try:
                session = self._open()
                # Subscribed first; now clear and trust: nothing committed before this
                # point can be served stale, and everything after it reaches us.
                self.cache.resync(self.lease)
                self._set_state("connected")
                self._connected.set()
                failures = 0
                self._listen(session)
            except Exception as exc:  # any failure means "we may have missed messages"
                self._connected.clear()
                self._lost(exc)
            finally:
                if session is not None:
                    with contextlib.suppress(Exception):  # closing a broken link may fail too
                        session.close()
            if self._stop.is_set():
                break
            failures += 1
            self._stop.wait(backoff_delay(failures, self.reconnect_min, self.reconnect_max))
        self._connected.clear()
        self.cache.mark_untrusted()

    def _listen(self, session: SyncSession) -> None:
        interval, lease, cache = self.health_check_interval, self.lease, self.cache
        last_alive = time.monotonic()
        next_ping = last_alive + interval
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + interval
                if session.ping():
                    last_alive = time.monotonic()
                    self._renew()
            if time.monotonic() - last_alive > lease:
                raise HealthCheckFailed()
            wait = min(_TICK, max(0.0, next_ping - time.monotonic()))
            payloads, alive = session.poll(wait)
            for payload in payloads:
                apply_payload(cache, payload)
            if alive:
                last_alive = time.monotonic()
                self._renew()


class AsyncBus(_BusBase):
    """Base of the asyncio buses: one task runs the listen loop."""

    def _init_runner(self) -> None:
        self._connected: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def _open(self) -> AsyncSession:
        raise NotImplementedError

    def start(self) -> Self:
        """Start the listen task on the running event loop."""
        if self._task is not None:
            raise ConfigurationError("bus already started")
        self._claim_cache()
        self._connected = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._connected))
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
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
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
        failures = 0
        try:
            while True:
                session: AsyncSession | None = None
                try:
                    session = await self._open()
                    self.cache.resync(self.lease)
                    self._set_state("connected")
                    connected.set()
                    failures = 0
                    await self._listen(session)
                except Exception as exc:
                    connected.clear()
                    self._lost(exc)
                finally:
                    if session is not None:
                        with contextlib.suppress(Exception):  # a broken link may fail to close
                            await asyncio.shield(session.close())
                failures += 1
                await asyncio.sleep(backoff_delay(failures, self.reconnect_min, self.reconnect_max))
        finally:
            connected.clear()
            self.cache.mark_untrusted()

    async def _listen(self, session: AsyncSession) -> None:
        interval, lease, cache = self.health_check_interval, self.lease, self.cache
        last_alive = time.monotonic()
        next_ping = last_alive + interval
        while True:
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + interval
                if await session.ping():
                    last_alive = time.monotonic()
                    self._renew()
            if time.monotonic() - last_alive > lease:
                raise HealthCheckFailed()
            wait = min(_TICK, max(0.0, next_ping - time.monotonic()))
            payloads, alive = await session.poll(wait)
            for payload in payloads:
                apply_payload(cache, payload)
            if alive:
                last_alive = time.monotonic()
                self._renew()
