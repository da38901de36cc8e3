"""Attacks on the read replica's proof, each against a real primary and paused standby.

Each test drives one interleaving to the point where a stale replica row could land in
the cache and checks that the revoked token is still refused (and, where it matters,
that the fresh one is still accepted). The node here polls the log once a minute and
the revoking store sends no hint, so nothing but the step under attack tells the node.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from sjti import KekRing, RevokedTokenError
from sjti.cache import KeyCache
from sjti.cache.pg_bus import PgNotifyBus
from sjti.stores.sql import SqlSecretStore

from ._replica_cluster import ReplicaCluster
from .test_replica import (
    CHANNEL,
    ISSUER,
    Node,
    _user,
    admin,
    cluster,
    engines,
    paused,
    ring,
    running_node,
)

__all__ = ["admin", "cluster", "engines", "paused", "ring"]  # fixtures, imported to be found

pytestmark = pytest.mark.service


@pytest.fixture
def quiet(
    cluster: ReplicaCluster, engines: tuple[sa.Engine, sa.Engine], ring: KekRing
) -> Iterator[Node]:
    """A node whose bus reads the log only when a hint says so (its poll is a minute away)."""
    with running_node(cluster, engines, ring, poll_interval=60) as started:
        yield started


def _cached_from_replica(
    cluster: ReplicaCluster, node: Node, admin: SqlSecretStore
) -> tuple[str, str]:
    """A user whose key the node read from the (caught-up) replica, and their token."""
    user = _user()
    token = ISSUER.issue(user, admin.ensure(user))
    cluster.standby.catch_up()
    served = node.served
    assert node.verify(token)["sub"] == user
    assert node.served == served + 1
    return user, token


@pytest.mark.parametrize("told_by", ["listener", "publish", "v1 message"])
def test_attack_a_drop_without_an_event_id_does_not_refill_from_the_lagging_replica(
    cluster: ReplicaCluster,
    engines: tuple[sa.Engine, sa.Engine],
    ring: KekRing,
    quiet: Node,
    paused: Callable[[], None],
    told_by: str,
) -> None:
    """Attack: the node learns of a revocation from something other than its bus's log
    read (a second store's listener, ``bus.publish``, a version-1 message from another
    node). The cache drops X; the next miss must not take X's old key from the replica."""
    other = SqlSecretStore(engines[0], ring)  # no NOTIFY, no relay: no hint reaches the bus
    user, token = _cached_from_replica(cluster, quiet, other)
    paused()
    if told_by == "listener":
        other.add_listener(quiet.cache.invalidate)
        other.revoke(user)
    elif told_by == "publish":
        other.revoke(user)
        quiet.bus.publish([user])
    else:
        other.revoke(user)
        sender = PgNotifyBus(KeyCache(), cluster.primary.url, channel=CHANNEL)
        sender.publish([user])  # {"v": 1, "users": [...]}: no event id
        sender.close()
        quiet.dropped(user)
    assert user not in quiet.cache
    with pytest.raises(RevokedTokenError):
        quiet.verify(token)
    quiet.store.latest_event_id()  # a log read after the drop: the proof is now an id
    with pytest.raises(RevokedTokenError):
        quiet.verify(token)
    other.close()


class _EvictWhileReading(OrderedDict[str, int]):
    """The guard's per-user memory, with a hook: the first time ``need`` looks ``user``
    up, other events evict it first (on another thread, as the bus would)."""

    def __init__(self, items: OrderedDict[str, int], user: str, evict: Callable[[], None]) -> None:
        super().__init__(items)
        self.user, self.evict, self.armed = user, evict, True

    def get(self, key: str, default: Any = None) -> Any:
        if key == self.user and self.armed:
            self.armed = False
            worker = threading.Thread(target=self.evict)
            worker.start()
            # Where need() reads without the guard's lock, the eviction lands now; where it
            # holds the lock, it cannot, and this stops waiting for it.
            worker.join(0.5)
        return super().get(key, default)


def test_attack_an_eviction_between_the_floor_and_the_user_does_not_lower_the_need(
    cluster: ReplicaCluster,
    quiet: Node,
    paused: Callable[[], None],
    admin: SqlSecretStore,
) -> None:
    """Attack: the guard forgets X (folding X's event into the floor) between a miss
    reading the floor and reading X's entry; the miss then needs neither."""
    user, token = _cached_from_replica(cluster, quiet, admin)
    others = [_user() for _ in range(4)]
    for other in others:
        admin.ensure(other)
    paused()
    event_id = admin.revoke(user).event_id
    assert event_id is not None
    quiet.applied(event_id)
    replica = quiet.store.replica
    assert replica is not None
    guard: Any = replica.guard
    guard._max_users = 4  # four more users and X is the oldest remembered: forgotten

    def evict() -> None:
        last = 0
        for other in others:
            last = admin.revoke(other).event_id or 0
        quiet.applied(last)

    guard._recent = _EvictWhileReading(guard._recent, user, evict)
    with pytest.raises(RevokedTokenError):
        quiet.verify(token)
    assert not guard._recent.armed


def test_held_a_miss_in_flight_across_the_invalidation_reads_again(
    cluster: ReplicaCluster,
    quiet: Node,
    paused: Callable[[], None],
    admin: SqlSecretStore,
) -> None:
    """Attack (held): the miss asks the replica with X's old need, the event is applied
    while the query runs, the replica answers the old key. The cache's epoch guard marks
    the fill stale; the second read needs the new event and goes to the primary."""
    user, token = _cached_from_replica(cluster, quiet, admin)
    quiet.cache.invalidate([user])  # a cold entry (as after a restart): the next verify misses
    quiet.store.latest_event_id()
    paused()
    replica = quiet.store.replica
    assert replica is not None
    fetch = replica.lane.fetch
    calls: list[Sequence[Any] | None] = []

    def racing(id_value: object, other: object = None) -> Sequence[Any] | None:
        if not calls:
            event_id = admin.revoke(user).event_id
            assert event_id is not None
            quiet.applied(event_id)
        row = fetch(id_value, other)
        calls.append(row)
        return row

    replica.lane.fetch = racing  # type: ignore[method-assign]
    stale = quiet.cache.stats().stale_fills
    with pytest.raises(RevokedTokenError):
        quiet.verify(token)
    assert calls[0] is not None
    assert calls[0][-1]  # the replica did prove the old need
    assert quiet.cache.stats().stale_fills == stale + 1


def test_held_this_nodes_own_revocation_is_refused_at_once(
    cluster: ReplicaCluster, quiet: Node, paused: Callable[[], None]
) -> None:
    """Attack (held): the node revokes X itself and verifies at once, before any hint or
    poll; the replica still has X's old key."""
    quiet.store.add_listener(quiet.cache.invalidate)
    user, token = _cached_from_replica(cluster, quiet, quiet.store)
    paused()
    quiet.store.revoke(user)
    with pytest.raises(RevokedTokenError):
        quiet.verify(token)
    signed_in = quiet.store.sign_in(user)  # and a fresh device is accepted at once
    fresh = ISSUER.issue(user, signed_in.key, claims={"sid": signed_in.sid})
    assert quiet.verify(fresh)["sid"] == signed_in.sid
