"""The Redis bus against a real Redis: propagation, and failing closed when the link dies.

Two "nodes" run in this process, each with its own KeyCache and bus; they share one
MemorySecretStore, as two app servers share one database.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass

import pytest
import redis

from sjti import BackendError, Issuer, RevokedTokenError, UserVerifier
from sjti.cache import CachedKeys, KeyCache
from sjti.cache.redis_bus import AsyncRedisBus, RedisBus
from sjti.stores import MemorySecretStore

from .conftest import RedisProcess, StoreSource, wait_until

pytestmark = pytest.mark.service


@dataclass
class Node:
    cache: KeyCache
    keys: CachedKeys
    bus: RedisBus


class Cluster:
    """Nodes sharing one store and one channel; closes what it started."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.channel = f"sjti-test:{secrets.token_hex(4)}"
        self.store = MemorySecretStore()
        self.nodes: list[Node] = []

    def node(self, *, start: bool = True, **bus_options: object) -> Node:
        cache = KeyCache()
        options: dict[str, object] = {"health_check_interval": 0.2, "socket_timeout": 1.0}
        options.update(bus_options)
        bus = RedisBus(cache, self.url, channel=self.channel, **options)  # type: ignore[arg-type]
        node = Node(cache, CachedKeys(StoreSource(self.store), cache=cache), bus)
        self.nodes.append(node)
        if start:
            bus.start()
            assert bus.wait_connected(5)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.bus.close()


@pytest.fixture
def cluster(redis_url: str) -> Generator[Cluster, None, None]:
    cluster = Cluster(redis_url)
    yield cluster
    cluster.close()


def _refuses(verifier: UserVerifier, token: str, keys: CachedKeys) -> bool:
    try:
        verifier.verify_with(token, keys.get)
    except RevokedTokenError:
        return True
    return False


def _kill_pubsub(url: str, client_name: str) -> int:
    """CLIENT KILL TYPE pubsub, narrowed to our listener (the server may be shared)."""
    admin = redis.Redis.from_url(url)
    try:
        ids = [c["id"] for c in admin.client_list(_type="pubsub") if c["name"] == client_name]
        for client_id in ids:
            admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "ID", client_id)
        return len(ids)
    finally:
        admin.close()


def _subscribers(url: str, channel: str) -> int:
    admin = redis.Redis.from_url(url)
    try:
        [(_, count)] = admin.pubsub_numsub(channel)
        return int(count)
    finally:
        admin.close()


def test_publish_on_one_node_drops_the_user_on_another(cluster: Cluster) -> None:
    """The bus's whole job: a revocation on node A empties node B's entry."""
    node_a, node_b = cluster.node(), cluster.node()
    cluster.store.ensure("alice")
    node_b.keys.get("alice")
    assert "alice" in node_b.cache
    assert node_a.bus.publish(["alice"]) == 2  # both nodes' listeners got it
    assert wait_until(lambda: "alice" not in node_b.cache, timeout=2)
    assert node_b.cache.stats().invalidations == 1


def test_token_revoked_on_one_node_is_refused_by_the_other(
    cluster: Cluster, issuer: Issuer, verifier: UserVerifier
) -> None:
    """Revoke on A: A refuses at once, B within moments (pub/sub is asynchronous)."""
    node_a, node_b = cluster.node(), cluster.node()
    cluster.store.add_listener(node_a.bus.publish)
    token = issuer.issue("alice", cluster.store.ensure("alice"))
    verifier.verify_with(token, node_b.keys.get)
    verifier.verify_with(token, node_b.keys.get)
    assert node_b.cache.stats().hits == 1  # B answers from its cache

    verifier.verify_with(token, node_a.keys.get)
    cluster.store.revoke("alice")
    returned = time.monotonic()
    assert _refuses(verifier, token, node_a.keys)  # the revoking node: at once
    assert wait_until(lambda: _refuses(verifier, token, node_b.keys), timeout=2)
    latency = time.monotonic() - returned
    assert latency < 1.0, latency
    fresh = issuer.issue("alice", cluster.store.ensure("alice"))
    assert verifier.verify_with(fresh, node_b.keys.get)["sub"] == "alice"


def test_killed_pubsub_connection_fails_closed_and_recovers(
    cluster: Cluster, issuer: Issuer, verifier: UserVerifier
) -> None:
    """A lost subscription may lose revocations: bypass the cache until resubscribed."""
    name = f"sjti-test-{secrets.token_hex(4)}"
    publisher = cluster.node(start=False)
    cluster.store.add_listener(publisher.bus.publish)
    node = cluster.node(reconnect_min=1.0, reconnect_max=1.0, redis_options={"client_name": name})
    old_token = issuer.issue("alice", cluster.store.ensure("alice"))
    verifier.verify_with(old_token, node.keys.get)
    assert node.cache.trusted
    assert "alice" in node.cache

    assert _kill_pubsub(cluster.url, name) == 1
    assert wait_until(lambda: not node.cache.trusted, timeout=node.bus.health_check_interval)
    # A revocation during the outage: nobody is subscribed, the message is lost.
    assert _subscribers(cluster.url, cluster.channel) == 0
    cluster.store.revoke("alice")
    assert _refuses(verifier, old_token, node.keys)  # read through, not the stale entry
    new_token = issuer.issue("alice", cluster.store.ensure("alice"))
    verifier.verify_with(new_token, node.keys.get)
    assert len(node.cache) == 0  # nothing stored while untrusted
    assert node.cache.stats().bypasses >= 2

    assert wait_until(lambda: node.cache.trusted, timeout=5)  # reconnected by itself
    assert _refuses(verifier, old_token, node.keys)
    assert verifier.verify_with(new_token, node.keys.get)["sub"] == "alice"
    assert "alice" in node.cache
    stats = node.cache.stats()
    assert (stats.bus_connects, stats.bus_disconnects, stats.bus_state) == (2, 1, "connected")


def test_redis_killed_and_restarted_fails_closed_then_recovers(
    own_redis: RedisProcess, issuer: Issuer, verifier: UserVerifier
) -> None:
    """kill -9 of Redis: no revoked token accepted meanwhile, and recovery without help."""
    cluster = Cluster(own_redis.url)
    try:
        publisher = cluster.node()
        cluster.store.add_listener(publisher.bus.publish)
        node = cluster.node(reconnect_min=0.05, reconnect_max=0.3)
        old_key = cluster.store.ensure("alice")
        old_token = issuer.issue("alice", old_key)
        verifier.verify_with(old_token, node.keys.get)

        own_redis.kill9()
        assert wait_until(lambda: not node.cache.trusted, timeout=node.bus.health_check_interval)
        with pytest.raises(BackendError):  # the publish failed, loudly...
            cluster.store.revoke("alice")
        new_key = cluster.store.load("alice")
        assert new_key is not None
        assert new_key.secret_bytes() != old_key.secret_bytes()  # ...after the commit
        assert _refuses(verifier, old_token, node.keys)

        own_redis.start()
        assert wait_until(lambda: node.cache.trusted, timeout=10)
        assert _refuses(verifier, old_token, node.keys)
        new_token = issuer.issue("alice", new_key)
        assert verifier.verify_with(new_token, node.keys.get)["sub"] == "alice"
        stats = node.cache.stats()
        assert (stats.bus_connects, stats.bus_disconnects) == (2, 1)
    finally:
        cluster.close()


def test_silent_redis_is_detected_by_the_health_check(own_redis: RedisProcess) -> None:
    """A server that stops answering without closing the socket must still be noticed."""
    cluster = Cluster(own_redis.url)
    try:
        node = cluster.node()
        cluster.store.ensure("alice")
        node.keys.get("alice")
        admin = redis.Redis.from_url(own_redis.url)
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # pongs stop, socket stays
        admin.close()
        paused = time.monotonic()
        assert wait_until(lambda: not node.cache.trusted, timeout=node.bus.lease + 0.3)
        assert time.monotonic() - paused < 1.5  # the lease ran out while still paused
        assert wait_until(lambda: "alice" not in node.cache, timeout=1)  # declared lost
        assert time.monotonic() - paused < 1.5
        assert node.bus.state != "connected"
        assert wait_until(lambda: node.cache.trusted, timeout=5)  # pause over: back
    finally:
        cluster.close()


@pytest.mark.anyio
async def test_async_bus_applies_messages_and_recovers_from_a_killed_connection(
    redis_url: str,
) -> None:
    """The asyncio bus keeps the same promises as the threaded one."""
    import asyncio

    channel = f"sjti-test:{secrets.token_hex(4)}"
    name = f"sjti-test-{secrets.token_hex(4)}"
    store = MemorySecretStore()
    store.ensure("alice")
    cache = KeyCache()
    keys = CachedKeys(StoreSource(store), cache=cache)
    options = {"channel": channel, "health_check_interval": 0.2, "socket_timeout": 1.0}
    listener = AsyncRedisBus(
        cache, redis_url, reconnect_min=0.5, redis_options={"client_name": name}, **options
    )
    publisher = AsyncRedisBus(KeyCache(), redis_url, **options)  # type: ignore[arg-type]

    async def until(predicate: object, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async with listener:
        assert await listener.wait_connected(5)
        await keys.aget("alice")
        assert "alice" in cache
        assert await publisher.publish(["alice"]) == 1
        assert await until(lambda: "alice" not in cache, 2)

        await keys.aget("alice")
        assert await asyncio.to_thread(_kill_pubsub, redis_url, name) == 1
        assert await until(lambda: not cache.trusted, listener.health_check_interval)
        assert "alice" not in cache
        assert await until(lambda: cache.trusted, 5)
        assert listener.state == "connected"
    await publisher.close()
    assert (listener.state, cache.trusted) == ("closed", False)


def test_publish_to_an_unreachable_redis_raises() -> None:
    """A lost invalidation must never be silent: the caller gets BackendError, fast."""
    from .. import services

    bus = RedisBus(KeyCache(), f"redis://127.0.0.1:{services._free_port()}/0")
    assert bus.publish([]) == 0  # an empty revocation sends nothing (and drops nothing)
    started = time.monotonic()
    with pytest.raises(BackendError):
        bus.publish(["alice"])
    assert time.monotonic() - started < 2
    bus.close()
