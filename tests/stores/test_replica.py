"""Cache misses from a streaming replica: never a revoked key, never a refused fresh login.

Against a real primary and a hot standby started for this module (tests/stores/
_replica_cluster.py); replication lag is made deterministic by pausing the standby's
replay. Node B follows the event log through a real PostgreSQL NOTIFY bus.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import sjti
from sjti import (
    BoundaryVerifier,
    Claims,
    ClaimsPolicy,
    Issuer,
    Kek,
    KekRing,
    RevokedTokenError,
    Settings,
    SigningKey,
    UserVerifier,
)
from sjti.bench._soak_infra import MissingTool, free_port
from sjti.cache import CachedKeys, KeyCache
from sjti.cache.pg_bus import AsyncPgNotifyBus, PgNotifyBus
from sjti.errors import ConfigurationError
from sjti.stores.sql import SqlSecretStore, upgrade
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._replica_cluster import ReplicaCluster

pytestmark = pytest.mark.service
CHANNEL = "sjti_replica_test"


@pytest.fixture(scope="module")
def cluster() -> Iterator[ReplicaCluster]:
    try:
        cluster = ReplicaCluster()
    except MissingTool as exc:
        pytest.skip(f"no private PostgreSQL cluster: {exc}")
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def engines(cluster: ReplicaCluster) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    primary = sa.create_engine(cluster.primary.url)
    standby = sa.create_engine(cluster.standby.url)
    upgrade(primary)
    cluster.standby.catch_up()
    yield primary, standby
    primary.dispose()
    standby.dispose()


@pytest.fixture(scope="module")
def ring() -> KekRing:
    return KekRing([Kek.generate("kek-1")])


class Node:
    """A verifying node: a store reading misses from the replica, a cache, a real bus."""

    def __init__(self, store: SqlSecretStore, cache: KeyCache, bus: PgNotifyBus) -> None:
        self.store, self.cache, self.bus = store, cache, bus
        self.keys = CachedKeys(store, cache=cache)
        self.verifier = UserVerifier(BoundaryVerifier(KEY, POLICY))

    def applied(self, event_id: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while (self.bus.watermark or 0) < event_id:
            assert time.monotonic() < deadline, "node B never applied the event"
            time.sleep(0.005)

    def dropped(self, user: str, seconds: float = 20) -> None:
        """Wait until the node's cache no longer holds ``user`` (a message arrived)."""
        deadline = time.monotonic() + seconds
        while user in self.cache:
            assert time.monotonic() < deadline, "node B never dropped the user"
            time.sleep(0.005)

    def verify(self, token: str) -> Claims:
        return self.verifier.verify_with(token, self.keys.get)

    @property
    def served(self) -> int:
        assert self.store.replica is not None
        return self.store.replica.served


KEY = SigningKey.generate("HS256")
POLICY = ClaimsPolicy(issuer="https://auth.test", audience="api")
ISSUER = Issuer(KEY, issuer="https://auth.test", audience="api")


@pytest.fixture
def admin(engines: tuple[sa.Engine, sa.Engine], ring: KekRing) -> SqlSecretStore:
    """Where revocations and sign-ins happen: the primary, NOTIFY in their transaction."""
    return SqlSecretStore(engines[0], ring, notify_channel=CHANNEL)


@contextlib.contextmanager
def running_node(
    cluster: ReplicaCluster, engines: tuple[sa.Engine, sa.Engine], ring: KekRing, **bus: Any
) -> Iterator[Node]:
    """A node with its replica, cache and NOTIFY bus (``bus``: the bus's options)."""
    cache = KeyCache()
    store = SqlSecretStore(engines[0], ring, replica=engines[1], replica_cache=cache)
    listener = PgNotifyBus(cache, cluster.primary.url, channel=CHANNEL, log=store, **bus)
    listener.start()
    assert listener.wait_connected(20)
    try:
        yield Node(store, cache, listener)
    finally:
        listener.close()
        store.close()


@pytest.fixture
def node(
    cluster: ReplicaCluster, engines: tuple[sa.Engine, sa.Engine], ring: KekRing
) -> Iterator[Node]:
    with running_node(cluster, engines, ring) as started:
        yield started


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def paused(cluster: ReplicaCluster) -> Iterator[Callable[[], None]]:
    """Pause the standby's replay when asked; always resume it afterwards."""
    yield cluster.standby.pause
    cluster.standby.resume()
    cluster.standby.catch_up()


def test_a_miss_after_an_applied_revocation_never_reads_the_lagging_replica(
    cluster: ReplicaCluster, admin: SqlSecretStore, node: Node, paused: Callable[[], None]
) -> None:
    """The race: event applied, cache dropped X, the replica still has X's old key. The
    miss must prove the replica holds the event, fail to, and read the primary."""
    user = _user()
    token = ISSUER.issue(user, admin.ensure(user))
    cluster.standby.catch_up()
    assert node.verify(token)["sub"] == user
    assert node.served == 1  # the miss was the replica's
    paused()
    event_id = admin.revoke(user).event_id
    assert event_id is not None
    node.applied(event_id)
    old_row = cluster.standby.sql(
        "SELECT wrapped_secret FROM sjti_user_secrets WHERE user_id = %s", (user,)
    )
    with admin.engine.connect() as conn:
        new_row = conn.exec_driver_sql(
            "SELECT wrapped_secret FROM sjti_user_secrets WHERE user_id = %(u)s", {"u": user}
        ).scalar()
    assert old_row != new_row  # the replica really still serves the old key
    with pytest.raises(RevokedTokenError):
        node.verify(token)
    assert node.keys.get(user).secret_bytes() == admin.load_secret(user)  # the primary's
    assert node.served == 1  # refused from the primary's row, not the replica's
    assert node.cache.stats().trusted


def test_fresh_sign_ins_during_lag_are_accepted_from_the_primary(
    admin: SqlSecretStore, node: Node, paused: Callable[[], None], cluster: ReplicaCluster
) -> None:
    """A new user's row, or a device the replica does not list yet: never refused for lag."""
    known = _user()
    admin.ensure(known)
    cluster.standby.catch_up()
    node.keys.get(known)  # cached from the replica
    paused()
    newcomer = _user()
    fresh = admin.sign_in(newcomer)
    device = admin.sign_in(known)
    assert device.event_id is not None
    node.applied(device.event_id)
    for user, signed_in in ((newcomer, fresh), (known, device)):
        token = ISSUER.issue(user, signed_in.key, claims={"sid": signed_in.sid})
        assert node.verify(token)["sid"] == signed_in.sid
    assert node.served == 1  # only the first read, before the pause


def test_bypass_reads_and_nodes_that_never_read_the_log_use_the_primary(
    admin: SqlSecretStore,
    engines: tuple[sa.Engine, sa.Engine],
    ring: KekRing,
    paused: Callable[[], None],
    cluster: ReplicaCluster,
) -> None:
    """An untrusted cache is bypassed, so its read must be current: no replica then. A
    node that never followed the event log cannot prove anything either."""
    user = _user()
    admin.ensure(user)
    cluster.standby.catch_up()
    untrusted = KeyCache()
    bypassing = SqlSecretStore(engines[0], ring, replica=engines[1], replica_cache=untrusted)
    bypassing.latest_event_id()  # it follows the log: only the trust keeps it off
    blind = SqlSecretStore(
        engines[0], ring, replica=engines[1], replica_cache=KeyCache(trusted=True)
    )
    paused()
    admin.revoke(user)  # no node is told
    current = admin.load_secret(user)
    assert bypassing.load_secret(user) == current
    assert blind.load_secret(user) == current
    for store in (bypassing, blind):
        assert store.replica is not None
        assert store.replica.served == 0
        store.close()
    untrusted.mark_trusted()
    assert bypassing.load_secret(user) != current  # trusted, untold: the replica's row
    assert bypassing.replica is not None
    assert bypassing.replica.served == 1
    newcomer = _user()
    made = admin.ensure(newcomer)  # a row the replica does not have yet
    found = bypassing.load(newcomer)
    assert found is not None
    assert found.secret_bytes() == made.secret_bytes()
    bypassing.close()


def test_a_replica_that_fails_hands_lookups_to_the_primary(
    admin: SqlSecretStore, engines: tuple[sa.Engine, sa.Engine], ring: KekRing
) -> None:
    """A dead replica costs the primary a read, never a refusal."""
    dead = sa.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres",
        connect_args={"connect_timeout": 2},
    )
    store = SqlSecretStore(engines[0], ring, replica=dead, replica_cache=KeyCache(trusted=True))
    store.latest_event_id()
    user = _user()
    admin.ensure(user)
    assert store.load_secret(user) == admin.load_secret(user)
    assert store.load_secret(user) == admin.load_secret(user)
    assert store.replica is not None
    assert (store.replica.served, store.replica.declined) == (0, 1)  # then left alone
    store.close()
    dead.dispose()


def test_a_replica_needs_postgresql_and_the_cache_trust(
    engines: tuple[sa.Engine, sa.Engine], ring: KekRing
) -> None:
    """Wiring mistakes fail when the store is built, with which one in the message."""
    with pytest.raises(ConfigurationError, match="replica_cache"):
        SqlSecretStore(engines[0], ring, replica=engines[1])
    sqlite = sa.create_engine("sqlite://")
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        SqlSecretStore(sqlite, ring, replica=engines[1], replica_cache=KeyCache(trusted=True))
    sqlite.dispose()


def test_configure_wires_the_replica_for_misses_only(
    cluster: ReplicaCluster,
    engines: tuple[sa.Engine, sa.Engine],
    paused: Callable[[], None],
    tmp_path: Path,
) -> None:
    """SJTI_DATABASE_REPLICA_URL through sjti.configure: the race refused, a fresh login
    accepted, on two configured nodes with their own NOTIFY buses."""
    settings = Settings(database_url=cluster.primary.url, key_file=str(tmp_path / "keys.json"))
    with (
        sjti.configure(settings) as admin,
        sjti.configure(settings, database_replica_url=cluster.standby.url) as node,
    ):
        assert admin.wait_ready(20)
        assert node.wait_ready(20)
        assert isinstance(node.store, SqlSecretStore)
        assert isinstance(admin.store, SqlSecretStore)
        replica = node.store.replica
        assert replica is not None
        assert admin.store.replica is None
        user = _user()
        token = admin.issue(user)
        cluster.standby.catch_up()
        assert node.verify(token)["sub"] == user
        assert replica.served == 1
        paused()
        event_id = admin.revoke(user, actor="test", reason="race").event_id
        assert event_id is not None
        while node.bus is not None and (node.bus.watermark or 0) < event_id:
            time.sleep(0.005)
        with pytest.raises(RevokedTokenError):
            node.verify(token)
        fresh = admin.sign_in(_user())  # waits until the node applied it
        assert node.verify(fresh.token)["sid"] == fresh.sid
        assert replica.served == 1


@pytest.mark.anyio
async def test_the_async_store_proves_the_replica_current_too(
    cluster: ReplicaCluster,
    admin: SqlSecretStore,
    ring: KekRing,
    paused: Callable[[], None],
    anyio_backend: str,
) -> None:
    """AsyncSqlSecretStore behind an asyncio NOTIFY bus: the same proof, the same
    fallback, through the cache's async path."""
    primary = create_async_engine(cluster.primary.url)
    standby = create_async_engine(cluster.standby.url)
    cache = KeyCache()
    node = AsyncSqlSecretStore(primary, ring, replica=standby, replica_cache=cache)
    bus = AsyncPgNotifyBus(cache, cluster.primary.url, channel=CHANNEL, log=node).start()
    keys = CachedKeys(asource=node, cache=cache)
    try:
        assert await bus.wait_connected(20)
        user = _user()
        old = admin.ensure(user).secret_bytes()
        cluster.standby.catch_up()
        assert (await keys.aget(user)).secret_bytes() == old
        assert node.replica is not None
        assert node.replica.served == 1
        paused()
        event_id = admin.revoke(user).event_id
        assert event_id is not None
        while (bus.watermark or 0) < event_id:
            await anyio.sleep(0.005)
        new = (await keys.aget(user)).secret_bytes()
        assert new == admin.load_secret(user)
        assert new != old
        assert node.replica.served == 1
    finally:
        await bus.close()
        await primary.dispose()
        await standby.dispose()
