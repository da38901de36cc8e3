"""Invalidation over a Redis Cluster (Redis 7+): :class:`RedisClusterBus`.

The same bus as :class:`~sjti.cache.redis_bus.RedisBus` (same plan, same event-log
watermark, same fail-closed rule); only the transport differs: ``SPUBLISH`` through
redis-py's :class:`~redis.cluster.RedisCluster`, and ``SSUBSCRIBE`` on the primary that
owns the channel's hash slot.

One shard channel
    Every hint goes to one channel (``sjti:revocations``), so all bus traffic lands on
    the one shard that owns its slot. That is deliberate: a hint is one small message
    per revocation *event* (a cohort is one event per batch), every node needs every
    hint (the event log is one ordered sequence), and the shard's work is one delivery
    per subscribed node. Spreading hints over channels per slot range would not spread
    that work (each node would subscribe to every channel), and it would multiply the
    ways to lose a message: any one of the shards failing would put every node in doubt.

The listener owns its subscription
    It asks the cluster client which primary owns the slot (after refreshing the slot
    map) and opens its own connection there, rather than using redis-py's
    ``ClusterPubSub``, which moves shard subscriptions by itself after a failover or a
    slot migration: a silent resubscribe would leave a window of lost hints the bus never
    saw. Here every change of owner passes through the bus's own path: the connection
    drops (the shard died) or the server ends the subscription (``SUNSUBSCRIBE``: the slot
    moved), the cache is bypassed at once, and the bus refreshes the slot map, subscribes
    on the new owner and replays the event log from its watermark before trusting again.

Publishing goes through the cluster client, which follows ``MOVED`` and refreshes its
slot map on its own; a publish that still fails leaves the event in the log (see
:meth:`~sjti.cache.redis_bus.RedisBus.relay`).

An event log is required
    While the cluster's views of the slot diverge (a reshard's first step on the new
    owner, a failover not yet gossiped), a publisher may route a hint to a node we are not
    subscribed on: it reaches nobody, and our subscription on the old owner keeps
    answering pings, so no health check on the link can see the loss (and if the old
    owner keeps the slot, nothing ever unsubscribes us). The poll of the log's
    ``max(id)`` every ``poll_interval`` is what finds such an event; without a log the
    revoked key would be served until ``max_age``.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from ..errors import ConfigurationError
from .keycache import KeyCache
from .redis_bus import RedisBus, _listener_options, _publisher_options

__all__ = ["RedisClusterBus"]


class RedisClusterBus(RedisBus):
    """:class:`~sjti.cache.redis_bus.RedisBus` on a Redis Cluster's sharded pub/sub.

    ``url`` names any node of the cluster (``redis://host:port``); the others are found
    from it. ``log`` (a SQL store) is required. Other arguments as for
    :class:`~sjti.cache.redis_bus.RedisBus`.

    >>> bus = RedisClusterBus(cache, "redis://10.0.0.5:7000", log=store).start()  # doctest: +SKIP
    >>> store.add_event_listener(bus.relay)                                        # doctest: +SKIP
    """

    _sharded = True
    _kind = "redis-cluster"

    def __init__(self, cache: KeyCache, url: str, **options: Any) -> None:
        if options.get("log") is None:
            raise ConfigurationError(
                "RedisClusterBus needs an event log (log=store): a hint routed to another "
                "shard while the cluster's views diverge is lost with the link alive, and "
                "only the log's poll finds it"
            )
        super().__init__(cache, url, **options)

    def _make_publisher(self) -> RedisCluster:
        return RedisCluster.from_url(
            self._url, **_publisher_options(self._socket_timeout, self._options)
        )

    def _send(self, message: str) -> int:
        return int(self._publisher.spublish(self.channel, message))

    def _listener(self) -> redis.Redis:
        """A connection of our own to the primary that owns the channel's slot now."""
        cluster: Any = self._publisher
        cluster.nodes_manager.initialize()  # after a failover or a move: ask the cluster
        node = cluster.get_node_from_key(self.channel)
        pool = cluster.get_redis_connection(node).connection_pool
        options = _listener_options(self._socket_timeout, self._options, Retry(NoBackoff(), 0))
        return redis.Redis.from_pool(
            redis.ConnectionPool(
                connection_class=pool.connection_class, **{**pool.connection_kwargs, **options}
            )
        )
