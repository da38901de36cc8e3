"""The listen loop shared by every bus, driven by fake sessions: no service needed."""

from __future__ import annotations

import queue
import threading

import pytest

from sjti import ConfigurationError
from sjti._core.invalidation import encode_invalidation
from sjti.cache import KeyCache
from sjti.cache._bus import ThreadedBus, backoff_delay

from .conftest import wait_until

KEY = b"k" * 32


class LoggingCache(KeyCache):
    """Records the order in which the bus drives the cache."""

    def __init__(self, log: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.log = log

    def resync(self, lease: float | None = None, *, since: float | None = None) -> None:
        self.log.append("resync")
        super().resync(lease, since=since)

    def mark_untrusted(self) -> None:
        self.log.append("untrusted")
        super().mark_untrusted()


class FakeSession:
    """Payloads come from a queue; behaviour switches simulate failures."""

    def __init__(self, bus: FakeBus) -> None:
        self.bus = bus
        self.closed = False

    def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        if self.bus.hang.is_set():
            self.bus.release_hang.wait(10)  # a read that never returns (silent network)
        if self.bus.broken.is_set():
            raise ConnectionError("link down")
        try:
            item = self.bus.inbox.get(timeout=timeout)
        except queue.Empty:
            return [], 0
        return [item], 0  # pings are answered by ping() itself

    def ping(self) -> bool:
        if self.bus.broken.is_set():
            raise ConnectionError("link down")
        return self.bus.pongs.is_set()

    def close(self) -> None:
        self.closed = True


class FakeBus(ThreadedBus):
    def __init__(self, cache: KeyCache, log: list[str], **kwargs: float) -> None:
        options = {"health_check_interval": 0.05, "reconnect_min": 0.01, "reconnect_max": 0.02}
        options.update(kwargs)
        super().__init__(cache, name="fake", **options)
        self.log = log
        self.inbox: queue.Queue[str] = queue.Queue()
        self.broken = threading.Event()
        self.hang = threading.Event()
        self.release_hang = threading.Event()
        self.pongs = threading.Event()
        self.pongs.set()
        self.opened = 0

    def _open(self) -> FakeSession:
        if self.broken.is_set():
            raise ConnectionError("cannot connect")
        self.opened += 1
        self.log.append("subscribed")
        return FakeSession(self)


@pytest.fixture
def log() -> list[str]:
    return []


def test_bus_subscribes_before_clearing_and_trusting(log: list[str]) -> None:
    """Clearing before the subscription is live would let a revocation slip between."""
    cache = LoggingCache(log, trusted=True)
    cache.get_or_load("alice", lambda _u: KEY)
    with FakeBus(cache, log) as bus:
        assert not cache.trusted or bus.state == "connected"  # untrusted until subscribed
        assert bus.wait_connected(5)
        assert log[:3] == ["untrusted", "subscribed", "resync"]
        assert "alice" not in cache
        assert cache.trusted


def test_messages_drop_users_and_all_drops_everyone(log: list[str]) -> None:
    """Each received message is applied: named users, or the whole cache."""
    cache = KeyCache()
    with FakeBus(cache, log) as bus:
        assert bus.wait_connected(5)
        for user in ("alice", "bob"):
            cache.get_or_load(user, lambda _u: KEY)
        [message] = encode_invalidation(["alice"])
        bus.inbox.put(message)
        assert wait_until(lambda: "alice" not in cache)
        assert "bob" in cache
        [everyone] = encode_invalidation(None)
        bus.inbox.put(everyone)
        assert wait_until(lambda: len(cache) == 0)


def test_connection_error_makes_cache_untrusted_then_bus_recovers(log: list[str]) -> None:
    """A dropped link may have lost messages: bypass at once, resync when back."""
    cache = KeyCache()
    with FakeBus(cache, log, reconnect_min=0.2, reconnect_max=0.2) as bus:
        assert bus.wait_connected(5)
        cache.get_or_load("alice", lambda _u: KEY)
        bus.broken.set()
        assert wait_until(lambda: not cache.trusted, timeout=1)
        assert len(cache) == 0
        assert bus.state == "disconnected"
        bus.broken.clear()
        assert wait_until(lambda: cache.trusted and bus.state == "connected", timeout=5)
        stats = cache.stats()
        assert (stats.bus_connects, stats.bus_disconnects) == (2, 1)


def test_unanswered_health_checks_make_cache_untrusted(log: list[str]) -> None:
    """A silent link (no error, no pong) must be noticed within two intervals."""
    cache = KeyCache()
    with FakeBus(cache, log, reconnect_min=0.5, reconnect_max=0.5) as bus:
        assert bus.wait_connected(5)
        bus.pongs.clear()
        assert wait_until(lambda: not cache.trusted, timeout=2 * bus.lease)
        assert wait_until(lambda: bus.state == "disconnected", timeout=1)


def test_lease_expires_even_if_the_listener_hangs(log: list[str]) -> None:
    """A listener stuck in a read cannot keep the cache trusted: the lease runs out."""
    cache = KeyCache()
    bus = FakeBus(cache, log).start()
    try:
        assert bus.wait_connected(5)
        bus.hang.set()
        assert wait_until(lambda: not cache.trusted, timeout=2 * bus.lease)
        assert bus.state == "connected"  # the thread has not noticed anything
    finally:
        bus.release_hang.set()
        bus.close()


def test_close_stops_the_thread_and_leaves_cache_untrusted(log: list[str]) -> None:
    """After close nothing keeps the cache current, so it must not be trusted."""
    cache = KeyCache()
    bus = FakeBus(cache, log).start()
    assert bus.wait_connected(5)
    bus.close()
    assert bus._thread is not None
    assert not bus._thread.is_alive()
    assert (bus.state, cache.trusted, cache.stats().bus_state) == ("closed", False, "closed")


def test_a_cache_takes_one_bus(log: list[str]) -> None:
    """Two buses renewing one lease could re-trust a cache while one of them is down."""
    cache = KeyCache()
    with FakeBus(cache, log), pytest.raises(ConfigurationError):
        FakeBus(cache, log).start()


def test_backoff_grows_and_is_capped() -> None:
    """Reconnect storms after a Redis restart are spread out and bounded."""
    delays = [backoff_delay(n, 0.1, 2.0) for n in range(1, 10)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 2.0 for d in delays)
    assert delays[-1] >= 1.0
