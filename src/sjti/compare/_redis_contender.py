"""The ``denylist`` contender with its state in Redis.

Keys (under a per-run prefix): ``deny:<jti>`` = ``1`` with a TTL until the token's ``exp``
(``SET ... EXAT``), and ``live:<user>``, a sorted set of the user's live jtis scored by
``exp``, which "revoke this user" needs, and ``dev:<user>:<sid>``, the same for the
tokens of one device (to sign it out). The full check is one ``EXISTS``. The client is
wrapped so every command (a pipeline counts once) is counted as a round trip. The app's
own ``app_users`` table stays in SQL.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine

from .._core.binding import SID_CLAIM
from .._core.claims import Claims
from .._core.strategies import DenylistStrategy
from ..errors import BackendError
from . import _db
from ._contender import Contender, DeviceScope
from ._jwt_contenders import _JwtContender
from ._world import AppSecrets

__all__ = ["CountingRedis", "RedisDenylistContender", "delete_prefix"]


class CountingRedis(redis.Redis):
    """A Redis client that counts the commands (round trips) it sends."""

    sent: int = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def run(self, pipe: Any) -> list[Any]:
        """Execute a pipeline: one round trip."""
        self.sent += 1
        result: list[Any] = pipe.execute()
        return result


@contextmanager
def _guarded() -> Iterator[None]:
    """A Redis that cannot answer is a store that cannot read: :class:`BackendError`."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise BackendError("state store unavailable") from exc


def _dead_client() -> CountingRedis:
    """A client whose every command fails: a Unix socket in a directory that is not there."""
    path = Path(tempfile.gettempdir()) / f"sjti-compare-gone-{secrets.token_hex(4)}" / "r.sock"
    return CountingRedis(unix_socket_path=str(path), socket_connect_timeout=1)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Drop every key under ``prefix`` (the run's scratch keys)."""
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)


class RedisDenylistContender(_JwtContender):
    """State: ``deny:<jti>`` until ``exp``, plus ``live:<user>`` (jti -> exp) to log out."""

    strategy = DenylistStrategy()

    def __init__(
        self, engine: Engine, app: AppSecrets, *, client: CountingRedis, prefix: str
    ) -> None:
        super().__init__(engine, app)
        self._client = client
        self._prefix = prefix

    @property
    def backend(self) -> str:
        return "redis"

    def on(self, engine: Engine) -> Contender:
        """The outage: the SQL engine given, and a Redis that cannot be reached."""
        return type(self)(engine, self._app, client=_dead_client(), prefix=self._prefix)

    def peer(self) -> Contender:
        """Another node: its own SQL engine and its own Redis connection pool."""
        pool = self._client.connection_pool
        client = CountingRedis(
            connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class, **pool.connection_kwargs
            )
        )
        return type(self)(
            _db.twin_engine(self._engine), self._app, client=client, prefix=self._prefix
        )

    def close(self) -> None:
        """Dispose of the engine and close this contender's Redis client."""
        self._engine.dispose()
        self._client.close()

    def _deny(self, jti: str) -> str:
        return f"{self._prefix}deny:{jti}"

    def _live(self, user: str) -> str:
        return f"{self._prefix}live:{user}"

    def _device(self, user: str, device: str) -> str:
        return f"{self._prefix}dev:{user}:{device}"

    # --- the state port -------------------------------------------------------------------

    def _record(self, issued: Sequence[Claims]) -> None:
        by_key: dict[str, dict[str, int]] = {}
        for claims in issued:
            user, jti, exp = str(claims["sub"]), str(claims["jti"]), int(claims["exp"])
            by_key.setdefault(self._live(user), {})[jti] = exp
            if SID_CLAIM in claims:
                by_key.setdefault(self._device(user, str(claims[SID_CLAIM])), {})[jti] = exp
        with _guarded():
            for part in _db.chunks(list(by_key)):
                pipe = self._client.pipeline(transaction=False)
                for key in part:
                    live = by_key[key]
                    pipe.zadd(key, dict(live))
                    pipe.expireat(key, max(live.values()))
                self._client.run(pipe)

    def _fetch(self, key: str) -> bool:
        with _guarded():
            return bool(self._client.exists(self._deny(key)))

    def revoke_users(self, users: Sequence[str]) -> None:
        with _guarded():
            for part in _db.chunks(sorted(set(users))):
                pipe = self._client.pipeline(transaction=False)
                for user in part:
                    pipe.zrange(self._live(user), 0, -1, withscores=True)
                found = self._client.run(pipe)
                pipe = self._client.pipeline(transaction=False)
                for user, live in zip(part, found, strict=True):
                    for jti, exp in live:
                        pipe.set(self._deny(_text(jti)), 1, exat=int(exp))
                    pipe.delete(self._live(user))
                self._client.run(pipe)

    def revoke_token(self, token: str) -> bool:
        claims = self._boundary.verify(token)
        jti = self.strategy.state_key(claims)
        with _guarded():
            pipe = self._client.pipeline(transaction=False)
            pipe.set(self._deny(jti), 1, exat=self.strategy.retain_until(claims))
            pipe.zrem(self._live(str(claims["sub"])), jti)
            self._client.run(pipe)
        return True

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        """Deny every live jti the device holds (known only because each was recorded)."""
        key = self._device(user, device)
        with _guarded():
            live: list[Any] = list(self._client.zrange(key, 0, -1, withscores=True))
            pipe = self._client.pipeline(transaction=False)
            for jti, exp in live:
                pipe.set(self._deny(_text(jti)), 1, exat=int(exp))
                pipe.zrem(self._live(user), _text(jti))
            pipe.delete(key)
            self._client.run(pipe)
        return "device"

    # --- measuring ------------------------------------------------------------------------

    def _keys(self) -> list[Any]:
        return list(self._client.scan_iter(match=f"{self._prefix}*", count=1000))

    def state_size(self) -> tuple[int, str]:
        """``MEMORY USAGE`` of every key of this contender, summed."""
        keys = self._keys()
        total = 0
        for part in _db.chunks(keys):
            pipe = self._client.pipeline(transaction=False)
            for key in part:
                pipe.memory_usage(key, samples=0)
            total += sum(int(size or 0) for size in self._client.run(pipe))
        return total, f"{len(keys)} keys"

    def read_copy(self, scratch: Path) -> _db.Dump:
        """The app's SQL tables, and every Redis key with its value (strings, sorted sets)."""
        rows: list[dict[str, Any]] = []
        for key in self._keys():
            kind = _text(self._client.type(key))
            if kind == "string":
                value: Any = self._client.get(key)
            elif kind == "zset":
                value = self._client.zrange(key, 0, -1, withscores=True)
            else:
                value = None
            rows.append({"key": _text(key), "type": kind, "value": value})
        return {**_db.read_copy(self._engine, scratch), "redis": rows}

    def commands_sent(self) -> int:
        return self._client.sent


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
