"""The bus with a real event log (SQL store) and a Redis we can kill: the database is the
truth, the bus is a hint, and nodes acknowledge what they applied."""

from __future__ import annotations

import secrets
from collections.abc import Generator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sjti.cache import KeyCache
from sjti.cache.redis_bus import RedisBus
from sjti.stores.sql import OwnedTable, SqlSecretStore, upgrade

from .conftest import KEY_RING, RedisProcess, wait_until


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Generator[SqlSecretStore, None, None]:
    sfx = secrets.token_hex(4)
    layout = OwnedTable(
        f"secrets_{sfx}",
        audit_table=f"audit_{sfx}",
        events_table=f"events_{sfx}",
        nodes_table=f"nodes_{sfx}",
    )
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path}/log.db")
    else:
        request.applymarker(pytest.mark.service)
        engine = sa.create_engine(request.getfixturevalue("postgres_url"))
    upgrade(engine, layout)
    yield SqlSecretStore(engine, KEY_RING, layout)
    engine.dispose()


class Node:
    """A process's view: its cache, wired like the service wires it."""

    def __init__(
        self,
        store: SqlSecretStore,
        url: str,
        *,
        relay: bool = True,
        bus_class: type[RedisBus] = RedisBus,
        **options: object,
    ):
        self.cache = KeyCache()
        self.bus = bus_class(
            self.cache,
            url,
            log=store,
            reconnect_min=0.05,
            reconnect_max=0.2,
            **options,  # type: ignore[arg-type]
        )
        if relay:
            store.add_listener(self.cache.invalidate)
            store.add_event_listener(self.bus.relay)
        self.bus.start()
        assert self.bus.wait_connected(10)

    def cached(self, store: SqlSecretStore, user_id: str) -> bytes | None:
        return self.cache.get_or_load(user_id, store.load_secret)


def test_logout_while_redis_is_down_succeeds_and_is_relayed_later(
    store: SqlSecretStore, own_redis: RedisProcess
) -> None:
    """A publish failure never fails a committed revocation; the event goes out later."""
    revoking, other = Node(store, own_redis.url), Node(store, own_redis.url, relay=False)
    try:
        for user in ("alice", "bob"):
            store.ensure(user)
            for node in (revoking, other):
                node.cached(store, user)
        old = store.load_secret("alice")
        own_redis.kill9()
        result = store.revoke("alice", reason="logout")  # no exception: the log has it
        assert result.event_id is not None
        assert wait_until(lambda: revoking.bus.publish_failures == 1, timeout=5)
        assert [e.id for e in store.pending_events()] == [result.event_id]
        assert revoking.cached(store, "alice") != old  # this node refuses at once
        assert wait_until(lambda: not other.cache.trusted, timeout=3)
        assert other.cached(store, "alice") != old  # bypassed: reads the database

        own_redis.start()
        assert wait_until(lambda: other.cache.trusted and revoking.cache.trusted, timeout=10)
        assert other.bus.watermark == result.event_id
        assert other.cached(store, "alice") != old
        assert "bob" in other.cache  # replayed, not cleared: bob's entry survived
        assert other.bus.follower.cleared == 1  # only the first sync
        assert wait_until(lambda: store.pending_events() == [], timeout=5)  # republished
    finally:
        revoking.bus.close()
        other.bus.close()


def test_wait_all_returns_once_every_live_node_applied_the_event(
    store: SqlSecretStore, own_redis: RedisProcess
) -> None:
    """Acknowledged revocation: the answer names the nodes that applied the event."""
    nodes = [Node(store, own_redis.url) for _ in range(2)]
    try:
        assert wait_until(lambda: len(store.live_nodes()) == 2, timeout=5)
        store.ensure("alice")
        result = store.revoke("alice", wait="all", timeout=5)
        ack = result.acknowledgement
        assert ack is not None
        assert ack.complete
        assert sorted(ack.acknowledged) == sorted(n.bus.node_id for n in nodes)
        assert all((n.bus.watermark or 0) >= ack.event_id for n in nodes)

        store.heartbeat("stuck-node", 0)  # alive, but never applies anything
        store.ensure("bob")
        late = store.revoke("bob", wait="all", timeout=0.3).acknowledgement
        assert late is not None
        assert (late.complete, late.pending) == (False, ("stuck-node",))
    finally:
        for node in nodes:
            node.bus.close()
    assert store.live_nodes() == [n for n in store.live_nodes() if n.id == "stuck-node"]


def test_an_event_nobody_published_is_found_by_the_poll(
    store: SqlSecretStore, own_redis: RedisProcess
) -> None:
    """The publisher cut off after commit: staleness is the poll interval, not max_age."""
    node = Node(store, own_redis.url, relay=False, poll_interval=0.2)
    try:
        store.ensure("alice")
        old = node.cached(store, "alice")
        assert "alice" in node.cache
        store.revoke("alice")  # no relay registered: nothing is published
        assert wait_until(lambda: "alice" not in node.cache, timeout=0.2 + 0.5)
        assert node.cached(store, "alice") != old
    finally:
        node.bus.close()
