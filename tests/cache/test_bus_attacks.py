"""Adversarial schedules against the bus's trust rule, on a real Redis: the listener
paused at chosen ops (a hook in ``_execute``), the network held by a loopback proxy.

The rule under attack: a node may trust its cache only while it can show it has read
everything Redis pushed to it up to a lease ago. An answer to a ping proves what Redis
sent *before it answered*, so the trust it buys runs from when the ping went out, not from
when the answer happened to be read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import pytest

from sjti.cache import _follow as follow
from sjti.cache.redis_bus import RedisBus
from sjti.stores.sql import SqlSecretStore

from .conftest import RedisProcess, wait_until
from .tcp_proxy import TcpProxy
from .test_event_log_bus import Node

pytestmark = pytest.mark.service


class GatedBus(RedisBus):
    """Once armed: pause before the next read (after the next ping, if asked), and again
    before the op that follows that read (where the test looks at the cache)."""

    proxy: TcpProxy

    def _init_runner(self) -> None:
        super()._init_runner()
        self.stage = "idle"
        self.pinged_at = 0.0
        self.bytes_at_ping = 0
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.looked = threading.Event()
        self.go_on = threading.Event()

    def arm(self, *, after_ping: bool) -> None:
        self.stage = "armed" if after_ping else "pinged"

    def _execute(self, op: follow.Op) -> object:
        if self.stage == "read":
            self.stage = "done"
            self.looked.set()
            self.go_on.wait(10)
        elif self.stage == "armed" and isinstance(op, follow.Ping):
            self.stage = "pinged"
            self.pinged_at = time.monotonic()
            self.bytes_at_ping = self.proxy.to_client
        elif self.stage == "pinged" and isinstance(op, follow.Receive):
            self.stage = "read"
            self.paused.set()
            self.resume.wait(10)
        return super()._execute(op)

    def let_go(self) -> None:
        self.resume.set()
        self.go_on.set()


@dataclass
class Rig:
    """A revoking node on Redis, and a gated node behind ``proxy`` that relays nothing,
    polls the log only every minute and has cached alice's ``old`` key."""

    proxy: TcpProxy
    node: Node
    bus: Any
    old: bytes | None


@pytest.fixture
def rig(store: SqlSecretStore, own_redis: RedisProcess) -> Generator[Rig, None, None]:
    proxy = TcpProxy(own_redis.port)
    revoking = Node(store, own_redis.url, health_check_interval=0.2)
    node = Node(
        store,
        proxy.url(),
        relay=False,
        bus_class=GatedBus,
        health_check_interval=0.2,
        poll_interval=60,
    )
    bus: Any = node.bus
    bus.proxy = proxy
    try:
        store.ensure("alice")
        yield Rig(proxy, node, bus, node.cached(store, "alice"))
    finally:
        bus.let_go()
        proxy.release()
        node.bus.close()
        revoking.bus.close()
        proxy.close()


def test_a_pong_read_late_trusts_only_from_when_its_ping_went_out(
    store: SqlSecretStore, rig: Rig
) -> None:
    """The pong is in the node's socket, then the path from Redis stalls (the connection
    stays up) and the listener is late to read. A revocation's hint is pushed into the
    stalled path and stays there for more than a lease. When the listener finally reads
    the old pong, it proves nothing about that hint: the node must not serve the revoked
    key. (The first rule renewed the lease from the moment the pong was read.)"""
    proxy, bus = rig.proxy, rig.bus
    bus.arm(after_ping=True)
    assert bus.paused.wait(5)  # the ping is out; the listener waits before reading
    assert wait_until(lambda: proxy.to_client > bus.bytes_at_ping)  # the pong is in
    proxy.hold()
    store.revoke("alice")  # committed, published: Redis pushes the hint to the node
    assert wait_until(lambda: proxy.held)
    time.sleep(bus.lease + 0.05)  # the hint has been on its way for a lease
    bus.resume.set()
    assert bus.looked.wait(5)  # the stale pong was read; nothing else was
    assert "alice" in rig.node.cache  # the hint has not arrived
    assert rig.node.cached(store, "alice") != rig.old  # bypassed: never the revoked key


def test_a_reconnect_redis_py_makes_by_itself_is_a_lost_link(
    store: SqlSecretStore, rig: Rig
) -> None:
    """redis-py reconnects a pub/sub connection on its own when the connection is marked
    for it (what a maintenance notification, MOVING or SMIGRATED, does) and resubscribes
    in its connect callback: the socket it drops may hold hints not yet read. The bus
    must see that as a lost link (bypass, then replay from the log), not carry on
    trusted. (First version: the hint was silently dropped with the old socket.)"""
    proxy, bus = rig.proxy, rig.bus
    bus.arm(after_ping=False)
    assert bus.paused.wait(5)
    bus._session._pubsub.connection.mark_for_reconnect()
    before = proxy.to_client
    store.revoke("alice")
    assert wait_until(lambda: proxy.to_client > before)  # the hint is in the old socket
    bus.resume.set()
    assert bus.looked.wait(5)
    assert rig.node.cached(store, "alice") != rig.old
    bus.go_on.set()
    assert wait_until(lambda: rig.node.cache.trusted)  # resubscribed and replayed
    assert rig.node.cached(store, "alice") != rig.old
    assert rig.node.cache.stats().bus_disconnects == 1


def test_redis_restarted_empty_on_its_port_while_the_listener_waits_is_a_lost_link(
    store: SqlSecretStore, own_redis: RedisProcess, rig: Rig
) -> None:
    """Held: Redis killed and started again, empty, on the same port while the listener
    is paused; a revocation commits meanwhile. redis-py reconnects to the new server
    (which would answer pings) at the next read, but the read's error still reaches the
    bus: bypass at once, then resubscribe and replay the event from the log."""
    bus = rig.bus
    bus.arm(after_ping=False)
    assert bus.paused.wait(5)
    own_redis.kill9()
    own_redis.start()
    event_id = store.revoke("alice").event_id
    bus.resume.set()
    assert bus.looked.wait(5)
    assert rig.node.cached(store, "alice") != rig.old
    bus.go_on.set()
    assert wait_until(lambda: bus.watermark == event_id and rig.node.cache.trusted)
    assert rig.node.cached(store, "alice") != rig.old
    assert rig.node.cache.stats().bus_disconnects == 1
