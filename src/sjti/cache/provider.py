"""``CachedKeys``: user keys for :class:`~sjti.UserVerifier`, through a :class:`KeyCache`.

>>> keys = CachedKeys(store, cache=KeyCache())           # doctest: +SKIP
>>> bus = RedisBus(keys.cache, "redis://127.0.0.1:6379/0").start()  # doctest: +SKIP
>>> verifier.verify_with(token, keys.get)                # doctest: +SKIP

An unknown user raises :class:`~sjti.RevokedTokenError`, so a token naming a user with no
key is refused like a revoked one; a source that fails raises :class:`~sjti.BackendError`
(fail closed: answer 503, never accept).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from .._core.binding import UserKey
from ..errors import BackendError, ConfigurationError, RevokedTokenError, SjtiError
from .keycache import CacheStats, KeyCache

__all__ = ["AsyncSecretSource", "CachedKeys", "SecretSource"]

_PREPARED_MAX = 4096


class SecretSource(Protocol):
    """Where the cache reads a user's raw 32-byte key from (a store)."""

    def load_secret(self, user_id: str) -> bytes | None:
        """The user's unwrapped key, or ``None`` if the user has none."""
        ...


class AsyncSecretSource(Protocol):
    """:class:`SecretSource` for asyncio."""

    def load_secret(self, user_id: str) -> Awaitable[bytes | None]: ...


class CachedKeys:
    """``get(user_id) -> UserKey`` (and ``aget``) backed by a :class:`KeyCache`.

    ``source`` serves :meth:`get`; ``asource`` serves :meth:`aget` (without it, ``aget``
    runs ``source`` in a worker thread). ``cache`` defaults to a new, untrusted
    :class:`KeyCache`: attach a bus to it (or build it ``trusted=True`` with a direct
    store listener) or every lookup reads through.
    """

    __slots__ = ("_asource", "_cache", "_prepared", "_source")

    def __init__(
        self,
        source: SecretSource | None = None,
        *,
        asource: AsyncSecretSource | None = None,
        cache: KeyCache | None = None,
    ) -> None:
        if source is None and asource is None:
            raise ConfigurationError("CachedKeys needs a source or an asource")
        self._source = source
        self._asource = asource
        self._cache = cache if cache is not None else KeyCache()
        # UserKeys with a prepared HMAC state for recently seen secrets, keyed by the secret
        # itself: the KeyCache alone decides which secret is current (a rotated key is a new
        # secret, so a stale entry here can never be returned), this only saves rebuilding.
        self._prepared: dict[bytes, UserKey] = {}

    @property
    def cache(self) -> KeyCache:
        return self._cache

    def get(self, user_id: str) -> UserKey:
        """The user's key; :class:`RevokedTokenError` if unknown, :class:`BackendError` if
        the source fails."""
        secret = self._cache.get_or_load(user_id, self._load)
        if secret is None:
            raise RevokedTokenError()
        return self._prepared.get(secret) or self._prepare(secret)

    async def aget(self, user_id: str) -> UserKey:
        """:meth:`get` for asyncio (for :meth:`UserVerifier.averify_with`)."""
        secret = await self._cache.aget_or_load(user_id, self._aload)
        if secret is None:
            raise RevokedTokenError()
        return self._prepared.get(secret) or self._prepare(secret)

    def _prepare(self, secret: bytes) -> UserKey:
        if len(self._prepared) >= _PREPARED_MAX:
            self._prepared.clear()  # bounded: ~800 bytes an entry
        key = self._prepared[secret] = UserKey.from_record(secret)
        return key

    def stats(self) -> CacheStats:
        return self._cache.stats()

    def _load(self, user_id: str) -> bytes | None:
        if self._source is None:
            raise ConfigurationError("CachedKeys has no synchronous source: use aget")
        try:
            return self._source.load_secret(user_id)
        except SjtiError:
            raise
        except Exception as exc:
            raise BackendError("secret store unavailable") from exc

    async def _aload(self, user_id: str) -> bytes | None:
        if self._asource is None:
            return await asyncio.to_thread(self._load, user_id)
        try:
            return await self._asource.load_secret(user_id)
        except SjtiError:
            raise
        except Exception as exc:
            raise BackendError("secret store unavailable") from exc
