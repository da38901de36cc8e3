"""A batched cohort revocation reaches other nodes as one bus message per batch, and a node
that receives one drops exactly that batch's users: no message per user, no cache flush."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from sjti.stores import Cohort
from sjti.stores.sql import SqlSecretStore

from .conftest import RedisProcess, wait_until
from .test_event_log_bus import Node, store

__all__ = ["store"]  # the fixture, shared with the event-log bus tests

COHORT, OTHERS, BATCH = 12, 5, 5  # 12 users in batches of 5: 3 batches


def _publishes(url: str) -> int:
    """PUBLISH commands this private Redis has served so far."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats").get("cmdstat_publish", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def test_a_cohort_reaches_another_node_as_one_message_per_batch(
    store: SqlSecretStore, own_redis: RedisProcess
) -> None:
    """12 users revoked in batches of 5: 3 PUBLISHes, 3 events applied, the other node's
    cache drops the 12 and keeps the 5 users outside the cohort, and it is never flushed
    past its first sync."""
    cohort_ids = [f"c{i:02d}" for i in range(COHORT)]
    for user in cohort_ids:
        store.ensure(user)
    cut = datetime.now(UTC)
    while datetime.now(UTC) <= cut:  # the others rotate strictly after the cut
        pass
    others = [f"o{i}" for i in range(OTHERS)]
    for user in others:
        store.ensure(user)
    revoking, other = Node(store, own_redis.url), Node(store, own_redis.url, relay=False)
    try:
        old = {user: other.cached(store, user) for user in cohort_ids + others}
        published = _publishes(own_redis.url)
        batches = list(store.revoke_batches(Cohort(rotated_before=cut), batch_size=BATCH))
        assert [b.count for b in batches] == [5, 5, 2]
        last = batches[-1].event_id
        assert wait_until(lambda: other.bus.watermark == last, timeout=10)
        assert _publishes(own_redis.url) - published == len(batches)
        # Each message says "read the log": the node applies each batch's event once,
        # dropping the ids it lists (3 events for 12 users).
        assert other.bus.follower.replayed == len(batches)
        assert other.bus.follower.cleared == 1  # only the first sync
        assert not any(user in other.cache for user in cohort_ids)
        assert all(user in other.cache for user in others)
        assert all(other.cached(store, u) not in (None, old[u]) for u in cohort_ids)
    finally:
        revoking.bus.close()
        other.bus.close()
