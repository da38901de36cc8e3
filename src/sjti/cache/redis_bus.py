"""Invalidation over Redis pub/sub: :class:`RedisBus` (a thread) and :class:`AsyncRedisBus`.

Every node runs one bus attached to its :class:`~sjti.cache.KeyCache`; the node that
revokes publishes (``store.add_listener(bus.publish)``). Each subscriber drops the named
users on receipt. See :mod:`sjti.cache.keycache` for the fail-closed rule and
:mod:`sjti.cache._bus` for the listen loop.

What a lost connection costs
    The listener owns its connection: redis-py's silent reconnect-and-resubscribe is
    switched off (no retries), and a reconnect it still makes by itself (a maintenance
    notification) fails the session's next call; so a dropped link, a failed health
    check (a ``PING`` every ``health_check_interval`` seconds; one still unanswered at a
    read begun two intervals after it counts as lost: see :mod:`sjti.cache._follow`) or
    any error makes the cache untrusted at once; the bus then reconnects with backoff,
    subscribes, and only then clears (or, with an event log, replays) and trusts the
    cache again.

Publishing
    With an event log (``log=store``, the recommended wiring) register
    ``store.add_event_listener(bus.relay)``: after each commit the relay publishes a hint
    for the revocation's event and never raises; a failure is counted
    (``publish_failures``) and the event, still unpublished in the log, is relayed again
    by any node once Redis is back, while every node's poll of ``max(id)`` finds it within
    ``poll_interval``. :meth:`RedisBus.publish` (ids, no log) is the first-generation path:
    it raises :class:`~sjti.BackendError` when Redis cannot be reached, and a node that
    stayed connected then keeps the old key until ``max_age``.

Propagation is asynchronous: ``publish`` returns once Redis has handed the message to
the subscribers, typically well under a millisecond before they apply it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from ..errors import BackendError
from ..stores.base import RevocationEvent
from ._bus import DEFAULT_REDIS_CHANNEL, AsyncBus, ThreadedBus, encode, encode_hint
from .keycache import KeyCache

__all__ = [  # noqa: RUF022 - plain sorted(), the order tests check (as for sjti)
    "AsyncRedisBus",
    "DEFAULT_REDIS_CHANNEL",
    "RedisBus",
]

_PING: Final = "sjti-bus-ping"


def _listener_options(
    socket_timeout: float, options: Mapping[str, Any], retry: object
) -> dict[str, Any]:
    """No retries, no hidden health checks: every failure must reach the bus loop."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "socket_keepalive": True,
        **options,
        "retry": retry,  # redis-py would otherwise reconnect and resubscribe silently
        "health_check_interval": 0,
    }


def _publisher_options(socket_timeout: float, options: Mapping[str, Any]) -> dict[str, Any]:
    """A few quick retries: a revocation should not wait seconds for a dead Redis."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 3),
        **options,
    }


def _is_subscribed(message: Mapping[str, Any] | None, channel: str, kind: str) -> bool:
    if message is None or message.get("type") != kind:
        return False
    name = message.get("channel")
    return (name.decode() if isinstance(name, bytes) else name) == channel


def _sort(message: Mapping[str, Any], payloads: list[str | bytes]) -> int:
    """Add a message's payload to ``payloads``; 1 for the answer to our ping, else 0.
    Raise if the server ended our subscription (a cluster slot moved: SUNSUBSCRIBE)."""
    kind = message["type"]
    if kind in ("message", "smessage"):
        payloads.append(message["data"])
    elif kind in ("unsubscribe", "sunsubscribe"):
        raise ConnectionError("subscription ended by the server")
    elif kind == "pong":
        return 1
    return 0


class _OwnConnection:
    """Refuses a connection redis-py re-made by itself.

    redis-py reconnects a pub/sub connection on its own (one marked for it by a
    maintenance notification, one found closed at a read) and resubscribes in a connect
    callback; the socket it dropped may have held hints not yet read. A session counts
    those reconnects and fails on the next call, so the bus sees a lost link (bypass,
    replay from the log) instead of carrying on trusted.
    """

    __slots__ = ("__weakref__", "_reconnects")  # redis-py keeps callbacks as weak methods

    def __init__(self, pubsub: Any) -> None:
        self._reconnects = 0
        pubsub.connection.register_connect_callback(self._reconnected)

    def _reconnected(self, connection: object) -> None:
        self._reconnects += 1

    def _check(self) -> None:
        if self._reconnects:
            raise ConnectionError("the subscription was re-made by redis-py; hints may be lost")


class _RedisSession(_OwnConnection):
    """One subscribed connection: ``SUBSCRIBE`` (plain) or ``SSUBSCRIBE`` (sharded)."""

    __slots__ = ("_client", "_pubsub")

    def __init__(self, client: redis.Redis, pubsub: Any) -> None:
        super().__init__(pubsub)
        self._client = client
        self._pubsub = pubsub

    @classmethod
    def open(
        cls, client: redis.Redis, channel: str, socket_timeout: float, *, sharded: bool
    ) -> _RedisSession:
        try:
            pubsub: Any = client.pubsub()  # type: ignore[no-untyped-call]  # untyped in redis-py
            (pubsub.ssubscribe if sharded else pubsub.subscribe)(channel)
            kind = "ssubscribe" if sharded else "subscribe"
            deadline = time.monotonic() + socket_timeout
            while not _is_subscribed(
                pubsub.get_message(timeout=max(0.0, deadline - time.monotonic())), channel, kind
            ):
                if time.monotonic() >= deadline:
                    raise TimeoutError("subscription not confirmed")
        except BaseException:
            client.close()
            raise
        return cls(client, pubsub)

    def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        payloads: list[str | bytes] = []
        pongs = 0
        message = self._pubsub.get_message(timeout=timeout)
        while message is not None:
            pongs += _sort(message, payloads)
            message = self._pubsub.get_message(timeout=0.0)
        self._check()
        return payloads, pongs

    def ping(self) -> bool:
        self._pubsub.ping(_PING)
        self._check()
        return False  # the pong arrives through poll

    def close(self) -> None:
        try:
            self._pubsub.close()
        finally:
            self._client.close()


class RedisBus(ThreadedBus):
    """Redis pub/sub invalidation for threaded apps: a daemon thread applies messages.

    ``url``: a redis-py URL. ``channel``: shared by every node. ``health_check_interval``:
    seconds between pings (a silent link is declared lost after two). ``reconnect_min`` /
    ``reconnect_max``: backoff bounds in seconds. ``socket_timeout``: for connecting,
    subscribing and publishing. ``redis_options``: more ``redis.Redis`` keyword
    arguments (TLS, credentials), for the listener and the publisher alike.

    >>> bus = RedisBus(cache, "redis://127.0.0.1:6379/0").start()  # doctest: +SKIP
    >>> store.add_listener(bus.publish)                            # doctest: +SKIP
    """

    def __init__(
        self,
        cache: KeyCache,
        url: str,
        *,
        channel: str = DEFAULT_REDIS_CHANNEL,
        health_check_interval: float = 1.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        log: Any = None,
        poll_interval: float = 1.0,
        node_id: str | None = None,
        socket_timeout: float = 5.0,
        redis_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            cache,
            health_check_interval=health_check_interval,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            log=log,
            poll_interval=poll_interval,
            node_id=node_id,
            name=f"{self._kind}:{channel}",
        )
        self.channel = channel
        self._url = url
        self._socket_timeout = socket_timeout
        self._options = dict(redis_options or {})
        self._publisher = self._make_publisher()

    # What a transport variant changes (see RedisClusterBus): the publishing client, how
    # a message is sent, and which server the listener subscribes on.

    def _make_publisher(self) -> Any:
        return redis.Redis.from_url(
            self._url, **_publisher_options(self._socket_timeout, self._options)
        )

    def _send(self, message: str) -> int:
        return int(self._publisher.publish(self.channel, message))

    _sharded = False  # SSUBSCRIBE / SPUBLISH rather than SUBSCRIBE / PUBLISH
    _kind = "redis"  # in the bus's name, for logs

    def _listener(self) -> redis.Redis:
        options = _listener_options(self._socket_timeout, self._options, Retry(NoBackoff(), 0))
        return redis.Redis.from_url(self._url, **options)

    def _open(self) -> _RedisSession:
        return _RedisSession.open(
            self._listener(), self.channel, self._socket_timeout, sharded=self._sharded
        )

    def publish(self, user_ids: Sequence[str] | None) -> int:
        """Announce that these users' keys changed (``None``: everyone's).

        This node's own cache drops the users first, before anything is sent, so the
        revoking node refuses the old tokens as soon as this returns (or raises).
        Returns the number of deliveries (subscribers x messages). Raises
        :class:`~sjti.BackendError` if Redis did not take the message: the revocation is
        committed but the other nodes may keep the old key until ``max_age``.
        """
        self.cache.invalidate(user_ids)
        delivered = 0
        try:
            for message in encode(user_ids):
                delivered += self._send(message)
        except redis.RedisError as exc:
            raise BackendError("invalidation not published; the revocation is committed") from exc
        return delivered

    def publish_event(self, event: RevocationEvent) -> int:
        """Publish the hint for a logged event; raises :class:`~sjti.BackendError` if Redis
        did not take it (use :meth:`relay` as the store's event listener: it never raises)."""
        try:
            return self._send(encode_hint(event))
        except redis.RedisError as exc:
            raise BackendError("revocation event not published") from exc

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        self._publisher.close()


class _AsyncRedisSession(_OwnConnection):
    __slots__ = ("_client", "_pubsub")

    def __init__(self, client: redis.asyncio.Redis, pubsub: Any) -> None:
        super().__init__(pubsub)
        self._client = client
        self._pubsub = pubsub

    @classmethod
    async def open(
        cls, url: str, channel: str, socket_timeout: float, options: Mapping[str, Any]
    ) -> _AsyncRedisSession:
        client = redis.asyncio.Redis.from_url(
            url, **_listener_options(socket_timeout, options, AsyncRetry(NoBackoff(), 0))
        )
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(channel)
            deadline = time.monotonic() + socket_timeout
            while not _is_subscribed(
                await pubsub.get_message(timeout=max(0.0, deadline - time.monotonic())),
                channel,
                "subscribe",
            ):
                if time.monotonic() >= deadline:
                    raise TimeoutError("subscription not confirmed")
        except BaseException:
            await client.aclose()
            raise
        return cls(client, pubsub)

    async def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        payloads: list[str | bytes] = []
        pongs = 0
        message = await self._pubsub.get_message(timeout=timeout)
        while message is not None:
            pongs += _sort(message, payloads)
            message = await self._pubsub.get_message(timeout=0.0)
        self._check()
        return payloads, pongs

    async def ping(self) -> bool:
        await self._pubsub.ping(_PING)
        self._check()
        return False

    async def close(self) -> None:
        try:
            await self._pubsub.aclose()
        finally:
            await self._client.aclose()


class AsyncRedisBus(AsyncBus):
    """:class:`RedisBus` for asyncio apps: a task applies messages.

    ``start()`` on the running loop; ``await close()`` to stop. ``await publish(ids)``
    after a revocation (a synchronous store listener cannot await it: with an async
    store, call it on the result of ``revoke``, or publish from the database with
    :class:`~sjti.cache.pg_bus.PgNotifyBus`).
    """

    def __init__(
        self,
        cache: KeyCache,
        url: str,
        *,
        channel: str = DEFAULT_REDIS_CHANNEL,
        health_check_interval: float = 1.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        log: Any = None,
        poll_interval: float = 1.0,
        node_id: str | None = None,
        socket_timeout: float = 5.0,
        redis_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            cache,
            health_check_interval=health_check_interval,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            log=log,
            poll_interval=poll_interval,
            node_id=node_id,
            name=f"redis:{channel}",
        )
        self.channel = channel
        self._url = url
        self._socket_timeout = socket_timeout
        self._options = dict(redis_options or {})
        options = _publisher_options(socket_timeout, self._options)
        if "retry" not in self._options:
            options["retry"] = AsyncRetry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 3)
        self._publisher = redis.asyncio.Redis.from_url(url, **options)

    async def _open(self) -> _AsyncRedisSession:
        return await _AsyncRedisSession.open(
            self._url, self.channel, self._socket_timeout, self._options
        )

    async def publish(self, user_ids: Sequence[str] | None) -> int:
        """See :meth:`RedisBus.publish` (this node's cache drops the users first)."""
        self.cache.invalidate(user_ids)
        delivered = 0
        try:
            for message in encode(user_ids):
                delivered += int(await self._publisher.publish(self.channel, message))
        except redis.RedisError as exc:
            raise BackendError("invalidation not published; the revocation is committed") from exc
        return delivered

    async def publish_event(self, event: RevocationEvent) -> int:
        """See :meth:`RedisBus.publish_event`."""
        try:
            return int(await self._publisher.publish(self.channel, encode_hint(event)))
        except redis.RedisError as exc:
            raise BackendError("revocation event not published") from exc

    async def close(self) -> None:
        await super().close()
        await self._publisher.aclose()
