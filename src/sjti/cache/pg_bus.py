"""Invalidation over PostgreSQL LISTEN/NOTIFY, for deployments without Redis.

:class:`PgNotifyBus` (a thread) and :class:`AsyncPgNotifyBus` (a task) hold one dedicated
connection that ``LISTEN``\\ s on a channel (default ``"sjti_revocations"``) and apply every
notification to the :class:`~sjti.cache.KeyCache`, with the same fail-closed rule as the
Redis bus (see :mod:`sjti.cache.keycache` and :mod:`sjti.cache._bus`): a terminated
backend, a failed health check (``SELECT 1`` every ``health_check_interval`` seconds) or
any error makes the cache untrusted at once; the bus reconnects with backoff, runs
``LISTEN``, then clears and trusts the cache again.

Publishing
    A SQL store with ``notify_channel`` publishes inside the revocation transaction
    (``SELECT pg_notify(channel, hint)``, the hint naming the event id), so the
    notification is sent if and only if the revocation commits. With ``log=store`` the
    bus also catches up from the event log, polls it and heartbeats (see
    :mod:`sjti.cache._follow`). The revoking node gets its own NOTIFY
    asynchronously like every other node; add ``store.add_listener(cache.invalidate)``
    so that it drops the users before ``revoke`` returns. Stores that are not in PostgreSQL can call
    :meth:`PgNotifyBus.publish`, which raises :class:`~sjti.BackendError` on failure; the
    revocation is then committed but a node that kept its connection keeps the old key
    until ``max_age`` (default 60 s).

URLs may be libpq URIs or SQLAlchemy ones (``postgresql+psycopg://``).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from ..errors import BackendError
from ..stores.base import RevocationEvent
from ._bus import DEFAULT_PG_CHANNEL, AsyncBus, ThreadedBus, encode, encode_hint
from .keycache import KeyCache

__all__ = [  # noqa: RUF022 - plain sorted(), the order tests check (as for sjti)
    "AsyncPgNotifyBus",
    "DEFAULT_PG_CHANNEL",
    "PgNotifyBus",
]

_DRIVER_SUFFIX: Final = re.compile(r"^(postgres(?:ql)?)\+\w+://")
_NOTIFY: Final = "SELECT pg_notify(%s, %s)"


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://…`` (SQLAlchemy) → ``postgresql://…`` (libpq)."""
    return _DRIVER_SUFFIX.sub(r"\1://", url)


def _connect_options(
    health_check_interval: float,
    connect_timeout: float,
    application_name: str,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Keepalives and a TCP user timeout so a silent network cannot hang the listener."""
    return {
        "autocommit": True,
        "connect_timeout": max(1, math.ceil(connect_timeout)),
        "application_name": application_name,
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(health_check_interval)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": max(1000, math.ceil(4000 * health_check_interval)),
        **options,
    }


def _listen_statement(channel: str) -> sql.Composed:
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))


class _PgSession:
    __slots__ = ("_channel", "_conn")

    def __init__(self, conn: psycopg.Connection[Any], channel: str) -> None:
        self._conn = conn
        self._channel = channel

    @classmethod
    def open(cls, url: str, channel: str, options: Mapping[str, Any]) -> _PgSession:
        conn = psycopg.connect(url, **options)
        try:
            conn.execute(_listen_statement(channel))  # subscribed once this returns
        except BaseException:
            conn.close()
            raise
        return cls(conn, channel)

    def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        payloads: list[str | bytes] = [
            notify.payload
            for notify in self._conn.notifies(timeout=timeout, stop_after=1)
            if notify.channel == self._channel
        ]
        return payloads, 0  # SELECT 1 answers pings

    def ping(self) -> bool:
        self._conn.execute("SELECT 1")
        return True

    def close(self) -> None:
        self._conn.close()


def _connection_settings(
    url: str,
    health_check_interval: float,
    connect_timeout: float,
    application_name: str,
    connect_options: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The libpq URL and the listener's and publisher's connect options (sync and async)."""
    options = _connect_options(
        health_check_interval, connect_timeout, application_name, connect_options or {}
    )
    return libpq_url(url), options, {**options, "application_name": f"{application_name}-pub"}


class PgNotifyBus(ThreadedBus):
    """PostgreSQL LISTEN/NOTIFY invalidation for threaded apps: a daemon thread listens.

    ``url``: the database (libpq or SQLAlchemy URL). ``channel``: shared with the store.
    ``health_check_interval``: seconds between ``SELECT 1`` checks (a silent link is
    declared lost after two). ``reconnect_min`` / ``reconnect_max``: backoff bounds.
    ``application_name``: how the listener shows in ``pg_stat_activity``.
    ``connect_options``: more ``psycopg.connect`` keyword arguments.
    """

    def __init__(
        self,
        cache: KeyCache,
        url: str,
        *,
        channel: str = DEFAULT_PG_CHANNEL,
        health_check_interval: float = 1.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        log: Any = None,
        poll_interval: float = 1.0,
        node_id: str | None = None,
        connect_timeout: float = 5.0,
        application_name: str = "sjti-bus",
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            cache,
            health_check_interval=health_check_interval,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            log=log,
            poll_interval=poll_interval,
            node_id=node_id,
            name=f"pg:{channel}",
        )
        self.channel = channel
        self._url, self._options, self._publish_options = _connection_settings(
            url, health_check_interval, connect_timeout, application_name, connect_options
        )
        self._publisher: psycopg.Connection[Any] | None = None
        self._publish_lock = threading.Lock()

    def _open(self) -> _PgSession:
        return _PgSession.open(self._url, self.channel, self._options)

    def publish(self, user_ids: Sequence[str] | None) -> int:
        """NOTIFY that these users' keys changed (``None``: everyone's), for stores that
        cannot NOTIFY in their own transaction. This node's cache drops the users first.
        Returns the number of messages sent; raises :class:`~sjti.BackendError` if
        PostgreSQL did not take them."""
        self.cache.invalidate(user_ids)
        messages = encode(user_ids)
        self._notify(messages)
        return len(messages)

    def publish_event(self, event: RevocationEvent) -> int:
        """NOTIFY the hint for a logged event (stores with ``notify_channel`` already
        did, in the revocation's transaction); raises :class:`~sjti.BackendError`."""
        self._notify([encode_hint(event)])
        return 1

    def _notify(self, messages: list[str]) -> None:
        with self._publish_lock:
            try:
                if self._publisher is None or self._publisher.closed:
                    self._publisher = psycopg.connect(self._url, **self._publish_options)
                with self._publisher.transaction():
                    for message in messages:
                        self._publisher.execute(_NOTIFY, (self.channel, message))
            except psycopg.Error as exc:
                if self._publisher is not None:
                    self._publisher.close()
                self._publisher = None
                raise BackendError(
                    "invalidation not published; the revocation is committed"
                ) from exc

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        with self._publish_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None


class _AsyncPgSession:
    __slots__ = ("_channel", "_conn")

    def __init__(self, conn: psycopg.AsyncConnection[Any], channel: str) -> None:
        self._conn = conn
        self._channel = channel

    @classmethod
    async def open(cls, url: str, channel: str, options: Mapping[str, Any]) -> _AsyncPgSession:
        conn = await psycopg.AsyncConnection.connect(url, **options)
        try:
            await conn.execute(_listen_statement(channel))
        except BaseException:
            await conn.close()
            raise
        return cls(conn, channel)

    async def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        payloads: list[str | bytes] = [
            notify.payload
            async for notify in self._conn.notifies(timeout=timeout, stop_after=1)
            if notify.channel == self._channel
        ]
        return payloads, 0  # SELECT 1 answers pings

    async def ping(self) -> bool:
        await self._conn.execute("SELECT 1")
        return True

    async def close(self) -> None:
        await self._conn.close()


class AsyncPgNotifyBus(AsyncBus):
    """:class:`PgNotifyBus` for asyncio apps: a task listens (``start()`` on the running
    loop, ``await close()`` to stop)."""

    def __init__(
        self,
        cache: KeyCache,
        url: str,
        *,
        channel: str = DEFAULT_PG_CHANNEL,
        health_check_interval: float = 1.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        log: Any = None,
        poll_interval: float = 1.0,
        node_id: str | None = None,
        connect_timeout: float = 5.0,
        application_name: str = "sjti-bus",
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            cache,
            health_check_interval=health_check_interval,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            log=log,
            poll_interval=poll_interval,
            node_id=node_id,
            name=f"pg:{channel}",
        )
        self.channel = channel
        self._url, self._options, self._publish_options = _connection_settings(
            url, health_check_interval, connect_timeout, application_name, connect_options
        )

    async def _open(self) -> _AsyncPgSession:
        return await _AsyncPgSession.open(self._url, self.channel, self._options)

    async def publish(self, user_ids: Sequence[str] | None) -> int:
        """See :meth:`PgNotifyBus.publish` (one short-lived connection per call)."""
        self.cache.invalidate(user_ids)
        messages = encode(user_ids)
        await self._notify(messages)
        return len(messages)

    async def publish_event(self, event: RevocationEvent) -> int:
        """See :meth:`PgNotifyBus.publish_event`."""
        await self._notify([encode_hint(event)])
        return 1

    async def _notify(self, messages: list[str]) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, **self._publish_options)
            async with conn, conn.transaction():
                for message in messages:
                    await conn.execute(_NOTIFY, (self.channel, message))
        except psycopg.Error as exc:
            raise BackendError("invalidation not published; the revocation is committed") from exc
