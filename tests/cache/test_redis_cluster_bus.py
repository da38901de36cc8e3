"""The cluster bus against a real 3-primary Redis Cluster started on loopback ports:
sharded pub/sub carries revocations between nodes, and losing the shard that owns the
channel (killed, or its slot moved) bypasses the cache until the bus has subscribed on
the owner again and replayed the event log."""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

import sjti
from sjti._core.invalidation import encode_event
from sjti.cache import KeyCache
from sjti.cache import _follow as follow
from sjti.cache.redis_cluster_bus import RedisClusterBus
from sjti.errors import ConfigurationError
from sjti.stores.sql import SqlSecretStore

from .conftest import wait_until
from .redis_cluster import LocalRedisCluster
from .test_event_log_bus import Node

pytestmark = pytest.mark.service


@pytest.fixture(scope="session")
def redis_cluster() -> Generator[LocalRedisCluster, None, None]:
    """Three primaries, no replicas, for the whole session; removed at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    cluster = LocalRedisCluster(binary)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def channel() -> str:
    """A channel of this test's own: a random hash slot, so a random owner."""
    return f"sjti-test:{secrets.token_hex(4)}"


def cluster_node(store: SqlSecretStore, url: str, channel: str, **options: Any) -> Node:
    settings: dict[str, Any] = {
        "bus_class": RedisClusterBus,
        "health_check_interval": 0.2,
        "socket_timeout": 1.0,
        "poll_interval": 0.5,
    }
    return Node(store, url, channel=channel, **{**settings, **options})


class SlowReplayBus(RedisClusterBus):
    """Once armed: pause after the next log read of a catch-up, and again at the
    ``Connected(True)`` that follows (the cache trusted, if it is going to be)."""

    def _init_runner(self) -> None:
        super()._init_runner()
        self.armed = False
        self.replayed = threading.Event()
        self.resume = threading.Event()
        self.trusting = threading.Event()
        self.go_on = threading.Event()

    def _execute(self, op: follow.Op) -> object:
        if self.replayed.is_set() and op == follow.Connected(True) and self.armed:
            self.armed = False
            self.trusting.set()
            self.go_on.wait(10)
        result = super()._execute(op)
        if self.armed and isinstance(op, follow.ReadLog) and not self.replayed.is_set():
            self.replayed.set()
            self.resume.wait(10)
        return result


def test_revocation_on_one_node_reaches_another_over_sharded_pubsub(
    redis_cluster: LocalRedisCluster, store: SqlSecretStore, channel: str
) -> None:
    """Nodes that name different cluster members meet on the shard that owns the slot."""
    ports = redis_cluster.ports
    revoking = cluster_node(store, f"redis://127.0.0.1:{ports[0]}", channel)
    other = cluster_node(store, f"redis://127.0.0.1:{ports[1]}", channel, relay=False)
    try:
        owner = redis_cluster.owner(channel)
        assert redis_cluster.shard_subscribers(owner, channel) == 2  # SSUBSCRIBE, on the owner
        store.ensure("alice")
        old = other.cached(store, "alice")
        assert "alice" in other.cache
        result = store.revoke("alice")
        assert wait_until(lambda: "alice" not in other.cache, timeout=2)
        assert other.bus.watermark == result.event_id
        assert other.cached(store, "alice") != old
        assert revoking.bus.publish_failures == 0
        assert other.bus.follower.replayed == 1  # read from the log the hint pointed at
    finally:
        revoking.bus.close()
        other.bus.close()


def test_killing_the_channels_shard_bypasses_then_resyncs_from_the_log(
    redis_cluster: LocalRedisCluster, store: SqlSecretStore, channel: str
) -> None:
    """kill -9 of the owning primary: the cache is never stale (bypassed while the shard is
    down), and once it is back the bus resubscribes and replays what it missed."""
    owner = redis_cluster.owner(channel)
    other_port = next(p for p in redis_cluster.ports if p != owner)
    url = f"redis://127.0.0.1:{other_port}"  # the node we name survives; the owner dies
    revoking = cluster_node(store, url, channel)
    other = cluster_node(store, url, channel, relay=False)
    try:
        for user in ("alice", "bob"):
            store.ensure(user)
            other.cached(store, user)
        old = store.load_secret("alice")

        redis_cluster.kill9(owner)
        assert wait_until(lambda: not other.cache.trusted, timeout=2)
        result = store.revoke("alice")  # commits; its hint cannot be published now
        assert other.cached(store, "alice") != old  # bypassed: read from the database
        redis_cluster.wait_failed(other_port)  # the cluster itself declared the shard gone
        assert other.bus.state != "connected"
        assert not other.cache.trusted

        started = time.monotonic()
        redis_cluster.start_node(owner)
        assert wait_until(lambda: other.cache.trusted, timeout=15)
        print(f"\nshard restarted -> resubscribed, caught up: {time.monotonic() - started:.2f} s")
        redis_cluster.wait_ok()
        assert other.bus.watermark == result.event_id
        assert other.cached(store, "alice") != old
        assert "bob" in other.cache  # replayed, not cleared
        assert other.bus.follower.cleared == 1  # the first sync only
        stats = other.cache.stats()
        assert (stats.bus_connects, stats.bus_disconnects) == (2, 1)
        assert redis_cluster.shard_subscribers(owner, channel) == 2
        assert wait_until(lambda: store.pending_events() == [], timeout=5)  # relayed later
    finally:
        revoking.bus.close()
        other.bus.close()


def test_a_moved_slot_ends_the_subscription_and_the_bus_follows_it(
    redis_cluster: LocalRedisCluster, store: SqlSecretStore, channel: str
) -> None:
    """Resharding: the server unsubscribes us (SUNSUBSCRIBE); the bus distrusts, finds the
    new owner, subscribes there and catches up, and hints flow through the new shard."""
    revoking = cluster_node(store, redis_cluster.url, channel)
    other = cluster_node(store, redis_cluster.url, channel, relay=False)
    try:
        store.ensure("alice")
        owner = redis_cluster.owner(channel)
        new_owner = next(p for p in redis_cluster.ports if p != owner)
        moved = time.monotonic()
        redis_cluster.move_slot(channel, new_owner)
        assert wait_until(lambda: other.cache.stats().bus_disconnects == 1, timeout=2)
        assert wait_until(lambda: other.cache.trusted, timeout=5)
        print(f"\nslot moved -> resubscribed, caught up: {time.monotonic() - moved:.2f} s")
        assert wait_until(lambda: redis_cluster.shard_subscribers(new_owner, channel) == 2)
        assert redis_cluster.shard_subscribers(owner, channel) == 0

        old = other.cached(store, "alice")
        result = store.revoke("alice")
        assert wait_until(lambda: other.bus.watermark == result.event_id, timeout=2)
        assert other.cached(store, "alice") != old
        assert revoking.bus.publish_failures == 0  # SPUBLISH followed MOVED
    finally:
        revoking.bus.close()
        other.bus.close()


def test_a_hint_sent_to_a_node_that_claims_the_slot_is_lost_while_the_owner_answers(
    redis_cluster: LocalRedisCluster, store: SqlSecretStore
) -> None:
    """Attack: the cluster's views of the slot diverge (a reshard's first step on the new
    owner, gossip not yet settled) and a publisher routes the hint to the claimant. It
    reaches nobody, while the subscription on the old owner keeps answering pings: no
    health check on the link can see the loss, and once the views settle nothing ever
    unsubscribes us. Only the event log's poll finds the event, so the cluster bus
    refuses to run without one (first version: a log-less bus kept the revoked key until
    ``max_age``)."""
    while True:  # a claimant with a lower epoch than the owner: the owner keeps the slot
        channel = f"sjti-test:{secrets.token_hex(4)}"
        owner = redis_cluster.owner(channel)
        lower = [
            p for p in redis_cluster.ports if redis_cluster.epoch(p) < redis_cluster.epoch(owner)
        ]
        if lower:
            break
    node = cluster_node(store, redis_cluster.url, channel, relay=False)
    watcher = redis_cluster.client(owner).pubsub()
    try:
        watcher.ssubscribe(channel)
        store.ensure("alice")
        old = node.cached(store, "alice")
        event_id = store.revoke("alice").event_id  # committed; nobody relays it
        assert event_id is not None
        hint = encode_event(event_id, ["alice"])
        assert redis_cluster.claim_and_publish(channel, lower[0], hint) == 0
        watcher.ping("after")
        kinds = []
        while not kinds or kinds[-1] != "pong":
            message = watcher.get_message(timeout=1)
            assert message is not None
            kinds.append(message["type"])
        assert "smessage" not in kinds  # the owner answered; the hint never came
        assert wait_until(lambda: node.bus.watermark == event_id, timeout=5)  # the poll
        assert node.cached(store, "alice") != old
        assert wait_until(lambda: redis_cluster.owner(channel) == owner)
        with pytest.raises(ConfigurationError, match="event log"):
            RedisClusterBus(KeyCache(), redis_cluster.url, channel=channel)
    finally:
        watcher.close()
        node.bus.close()
        redis_cluster.wait_ok()


def test_a_slot_moved_during_a_long_replay_leaves_the_cache_untrusted(
    redis_cluster: LocalRedisCluster, store: SqlSecretStore, channel: str
) -> None:
    """Attack: the bus has subscribed on the owner and is replaying the log (slowly: a
    big backlog, a busy database) when the slot moves; a revocation committed after its
    log read goes, by MOVED, to the new owner, and the old owner's SUNSUBSCRIBE waits
    unread. The replay ends more than a lease after the subscription: the cache must not
    be trusted on that stale subscription's word. (First version: trusted for a full
    lease from the end of the replay, serving the revoked key until the SUNSUBSCRIBE was
    read; now the lease runs from the Connect.) Then the bus follows the slot."""
    revoking = cluster_node(store, redis_cluster.url, channel)
    node = cluster_node(
        store, redis_cluster.url, channel, relay=False, bus_class=SlowReplayBus, poll_interval=60
    )
    bus: Any = node.bus
    try:
        store.ensure("alice")
        old = node.cached(store, "alice")
        bus.armed = True
        bus._session._pubsub.connection.mark_for_reconnect()  # any lost link: reconnect
        assert bus.replayed.wait(5)  # subscribed on the owner, the log read
        owner = redis_cluster.owner(channel)
        redis_cluster.move_slot(channel, next(p for p in redis_cluster.ports if p != owner))
        event_id = store.revoke("alice").event_id  # relayed to the new owner
        time.sleep(bus.lease)  # the replay outlasts a lease
        bus.resume.set()
        assert bus.trusting.wait(5)
        assert node.cached(store, "alice") != old
        bus.go_on.set()
        assert wait_until(lambda: bus.watermark == event_id, timeout=5)
        assert wait_until(lambda: node.cache.trusted)
        assert node.cached(store, "alice") != old
    finally:
        bus.resume.set()
        bus.go_on.set()
        node.bus.close()
        revoking.bus.close()


def test_the_factory_wires_the_cluster_bus_from_settings(
    redis_cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    """``redis_cluster=True``: the service's own wiring subscribes on the cluster."""
    from ..test_configure import refused_within, sqlite_settings

    settings = sqlite_settings(tmp_path, redis_url=redis_cluster.url, redis_cluster=True)
    with sjti.configure(settings) as first, sjti.configure(settings) as second:
        assert isinstance(second.bus, RedisClusterBus)
        assert second.wait_ready(10)
        token = first.issue("hank")
        assert second.verify(token)["sub"] == "hank"
        first.revoke("hank", actor="t", reason="t")
        assert refused_within(second, token, 5)
        owner = redis_cluster.owner(second.bus.channel)
        assert redis_cluster.shard_subscribers(owner, second.bus.channel) == 2
