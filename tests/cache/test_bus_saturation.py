"""The bus under a saturated CPU: a slow local CPU must never pass for a dead Redis.

A bus thread that runs late (the GIL held by request threads, the cores taken by other
processes, a slow database call in its own loop) reads the pong that waited for it in the
socket; the link is kept (no disconnect, no resync), while the cache's own trust lease
still lapses if the thread ran too late to prove the cache current (fail closed, then
trusted again once a ping sent after the stall is answered). The issue's measurement:
one service worker dropped its bus on a failed health check under load.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sjti.stores.sql import SqlSecretStore

from .conftest import wait_until
from .test_event_log_bus import Node

pytestmark = pytest.mark.service


def hold_the_gil(seconds: float) -> None:
    """Run Python in this thread for ``seconds`` without letting any other thread run:
    the switch interval outlasts the loop, so a waiting thread never gets the GIL."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds + 30)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    finally:
        sys.setswitchinterval(previous)


def test_a_bus_thread_starved_past_its_lease_keeps_the_link(
    store: SqlSecretStore, redis_url: str
) -> None:
    """The GIL held for 4 leases: the cache is bypassed meanwhile (its lease lapsed), then
    trusted again by the answer to the next ping, without a disconnect or a log resync."""
    node = Node(store, redis_url, health_check_interval=0.2, socket_timeout=1.0)
    try:
        store.ensure("alice")
        node.cached(store, "alice")
        assert wait_until(lambda: node.cache.stats().bus_state == "connected")
        hold_the_gil(4 * node.bus.lease)
        assert not node.cache.trusted  # the bus could not prove it current: fail closed
        assert wait_until(lambda: node.cache.trusted, timeout=2)
        time.sleep(2 * node.bus.lease)  # room for a late health-check verdict
        stats = node.cache.stats()
        assert (stats.bus_connects, stats.bus_disconnects) == (1, 0)
        assert node.bus.follower.cleared == 1  # no resync either
        assert "alice" in node.cache
    finally:
        node.bus.close()


@contextmanager
def saturated_cpu(processes: int) -> Iterator[None]:
    """Busy processes on every core, and a thread of this process that wants the GIL all
    the time (a worker's request threads)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        stop.set()
        spinner.join()
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_revocations_flow_with_zero_bus_drops_under_cpu_saturation(
    store: SqlSecretStore, redis_url: str
) -> None:
    """~5 s with every core busy and the GIL contended: every revocation reaches the other
    node through the bus, and neither node drops its bus."""
    options = {"health_check_interval": 0.2, "socket_timeout": 1.0, "poll_interval": 0.5}
    revoking, other = (
        Node(store, redis_url, **options),
        Node(store, redis_url, relay=False, **options),
    )
    users = [f"user-{n}" for n in range(20)]
    for user in users:
        store.ensure(user)
        other.cached(store, user)
    delays: list[float] = []
    lapses = 0
    try:
        with saturated_cpu(processes=2):
            end = time.monotonic() + 5.0
            n = 0
            while time.monotonic() < end:
                user = users[n % len(users)]
                n += 1
                old = other.cached(store, user)
                event_id = store.revoke(user).event_id
                assert event_id is not None
                returned = time.monotonic()
                assert wait_until(lambda e=event_id: (other.bus.watermark or 0) >= e, timeout=10)
                delays.append(time.monotonic() - returned)
                lapses += not other.cache.trusted
                assert other.cached(store, user) != old  # never the revoked key
        latest = store.latest_event_id()
        assert wait_until(lambda: other.bus.watermark == latest, timeout=5)
        assert all(other.cached(store, u) == store.load_secret(u) for u in users)
        for node in (revoking, other):
            stats = node.cache.stats()
            assert (stats.bus_connects, stats.bus_disconnects) == (1, 0), stats
        assert len(delays) >= 3  # revocations flowed (how many depends on the machine)
        delays.sort()
        print(
            f"\nsaturated: {len(delays)} revocations, propagation p50 "
            f"{1000 * statistics.median(delays):.1f} ms, max {1000 * delays[-1]:.1f} ms, "
            f"lease lapses seen {lapses}, bypasses {other.cache.stats().bypasses}, "
            f"publish failures {revoking.bus.publish_failures}"
        )
    finally:
        revoking.bus.close()
        other.bus.close()
