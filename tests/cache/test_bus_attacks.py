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
    """Once armed: note when the next ping goes out, pause before the read after it, and
    pause again before the op that follows that read (the test looks at the cache)."""

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


def test_a_pong_read_late_trusts_only_from_when_its_ping_went_out(
    store: SqlSecretStore, own_redis: RedisProcess
) -> None:
    """The pong is in the node's socket, then the path from Redis stalls (the connection
    stays up) and the listener is late to read. A revocation's hint is pushed into the
    stalled path and stays there for more than a lease. When the listener finally reads
    the old pong, it proves nothing about that hint: the node must not serve the revoked
    key. (The first rule renewed the lease from the moment the pong was read.)"""
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
        old = node.cached(store, "alice")
        bus.stage = "armed"
        assert bus.paused.wait(5)  # the ping is out; the listener waits before reading
        assert wait_until(lambda: proxy.to_client > bus.bytes_at_ping)  # the pong is in
        proxy.hold()
        store.revoke("alice")  # committed, published: Redis pushes the hint to the node
        assert wait_until(lambda: proxy.held)
        time.sleep(node.bus.lease + 0.05)  # the hint has been on its way for a lease
        bus.resume.set()
        assert bus.looked.wait(5)  # the stale pong was read; nothing else was
        assert "alice" in node.cache  # the hint has not arrived
        assert node.cached(store, "alice") != old  # bypassed: never the revoked key
    finally:
        bus.resume.set()
        bus.go_on.set()
        proxy.release()
        node.bus.close()
        revoking.bus.close()
        proxy.close()
