"""Per-process cache of user keys, invalidated over a bus, failing closed.

* :class:`KeyCache`: bounded, coalescing, with negative caching, a max age and a
  *trusted* flag; untrusted, it is bypassed (every lookup reads through).
* :class:`CachedKeys`: ``get(user_id) -> UserKey`` (and ``aget``) for
  :meth:`sjti.UserVerifier.verify_with`; unknown users raise :class:`sjti.RevokedTokenError`.
* The buses live in their own modules so that importing this package needs neither
  redis nor psycopg: :mod:`sjti.cache.redis_bus` (``RedisBus``, ``AsyncRedisBus``) and
  :mod:`sjti.cache.pg_bus` (``PgNotifyBus``, ``AsyncPgNotifyBus``).

::

    store ──revoke──▶ commit ──listener──▶ bus.publish ──▶ Redis / NOTIFY
                                                              │
    every node:  bus listener ──drop ids──▶ KeyCache ◀──get── CachedKeys ◀── UserVerifier
                 bus lost ──▶ untrusted (read through) ──▶ resubscribe, clear, trusted

Fail closed: a node that lost its bus stops serving from its cache until it has
resubscribed and caught up. With the event log (``log=store`` on the bus) it replays the
revocations it missed instead of clearing, and its poll of ``max(id)`` bounds the one
case pub/sub cannot see (a message lost while the node stayed connected) by
``poll_interval``; without it, by ``max_age``. :mod:`sjti.cache.poll_bus` keeps a cache
current from the log alone.
"""

from ._bus import DEFAULT_PG_CHANNEL, DEFAULT_REDIS_CHANNEL
from .keycache import BusState, CacheStats, KeyCache, MonotonicClock
from .provider import AsyncSecretSource, CachedKeys, SecretSource

__all__ = [  # noqa: RUF022 - plain sorted(), the order tests check (as for sjti)
    "AsyncSecretSource",
    "BusState",
    "CacheStats",
    "CachedKeys",
    "DEFAULT_PG_CHANNEL",
    "DEFAULT_REDIS_CHANNEL",
    "KeyCache",
    "MonotonicClock",
    "SecretSource",
]
