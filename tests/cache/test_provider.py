"""CachedKeys: the user layer's key lookup, through the cache, with typed failures."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sjti.cache
from sjti import BackendError, ConfigurationError, Issuer, RevokedTokenError, UserVerifier
from sjti.cache import CachedKeys, CacheStats, KeyCache
from sjti.stores import MemorySecretStore

from .conftest import StoreSource


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


def test_cached_keys_plug_into_verify_with(
    store: MemorySecretStore, issuer: Issuer, verifier: UserVerifier
) -> None:
    """The provider is a drop-in lookup: the user layer passes with the cached key."""
    token = issuer.issue("alice", store.ensure("alice"))
    source = StoreSource(store)
    keys = CachedKeys(source, cache=KeyCache(trusted=True))
    assert verifier.verify_with(token, keys.get)["sub"] == "alice"
    assert verifier.verify_with(token, keys.get)["sub"] == "alice"
    assert source.calls == 1


def test_revocation_through_a_direct_listener_refuses_the_token(
    store: MemorySecretStore, issuer: Issuer, verifier: UserVerifier
) -> None:
    """Single process: the store's listener invalidates the cache before revoke returns."""
    cache = KeyCache(trusted=True)
    store.add_listener(cache.invalidate)
    keys = CachedKeys(StoreSource(store), cache=cache)
    token = issuer.issue("alice", store.ensure("alice"))
    verifier.verify_with(token, keys.get)
    store.revoke("alice")
    with pytest.raises(RevokedTokenError):
        verifier.verify_with(token, keys.get)


def test_unknown_user_is_refused_as_revoked(issuer: Issuer, verifier: UserVerifier) -> None:
    """A token naming a user without a key must fail the user layer, not crash."""
    keys = CachedKeys(StoreSource(MemorySecretStore()), cache=KeyCache(trusted=True))
    with pytest.raises(RevokedTokenError):
        keys.get("ghost")
    with pytest.raises(RevokedTokenError):
        keys.get("ghost")  # the negative entry answers the same way


def test_failing_source_raises_backend_error_not_acceptance() -> None:
    """A database outage must surface as a 503-class error: fail closed."""

    class Down:
        def load_secret(self, user_id: str) -> bytes | None:
            raise ConnectionError("refused")

    keys = CachedKeys(Down(), cache=KeyCache(trusted=True))
    with pytest.raises(BackendError) as info:
        keys.get("alice")
    assert isinstance(info.value.__cause__, ConnectionError)


def test_provider_needs_a_source() -> None:
    """A provider that can never load a key is a configuration error, not a silent 401."""
    with pytest.raises(ConfigurationError):
        CachedKeys()


@pytest.mark.anyio
async def test_aget_uses_the_async_source(
    store: MemorySecretStore, issuer: Issuer, verifier: UserVerifier
) -> None:
    """Async apps verify through averify_with without blocking the loop."""
    key = store.ensure("alice")

    class AsyncSource:
        calls = 0

        async def load_secret(self, user_id: str) -> bytes | None:
            self.calls += 1
            found = store.load(user_id)
            return None if found is None else found.secret_bytes()

    asource = AsyncSource()
    keys = CachedKeys(asource=asource, cache=KeyCache(trusted=True))
    token = issuer.issue("alice", key)
    assert (await verifier.averify_with(token, keys.aget))["sub"] == "alice"
    assert (await verifier.averify_with(token, keys.aget))["sub"] == "alice"
    assert asource.calls == 1
    with pytest.raises(RevokedTokenError):
        await keys.aget("ghost")


@pytest.mark.anyio
async def test_aget_runs_a_sync_source_in_a_thread(store: MemorySecretStore) -> None:
    """A sync-only store still serves async callers."""
    key = store.ensure("alice")
    keys = CachedKeys(StoreSource(store), cache=KeyCache(trusted=True))
    assert (await keys.aget("alice")).secret_bytes() == key.secret_bytes()


def test_stats_snapshot_counts_what_happened(store: MemorySecretStore) -> None:
    """The server exports these counters; they must match the traffic exactly."""
    store.ensure("alice")
    keys = CachedKeys(StoreSource(store), cache=KeyCache(trusted=True))
    keys.get("alice")
    keys.get("alice")
    keys.cache.invalidate(["alice"])
    keys.cache.mark_untrusted()
    keys.get("alice")
    stats = keys.stats()
    assert isinstance(stats, CacheStats)
    assert (stats.hits, stats.misses, stats.bypasses, stats.loads) == (1, 1, 1, 2)
    assert (stats.invalidations, stats.size, stats.trusted, stats.bus_state) == (
        1,
        0,
        False,
        "none",
    )


def test_all_is_sorted_and_names_exist() -> None:
    """The package facade stays honest, like the root's."""
    assert list(sjti.cache.__all__) == sorted(set(sjti.cache.__all__))
    assert [name for name in sjti.cache.__all__ if not hasattr(sjti.cache, name)] == []


def test_importing_the_cache_imports_neither_redis_nor_psycopg() -> None:
    """Apps using only the cache (or one bus) must not need the other drivers."""
    code = "import sys, sjti.cache; print(sorted({'redis', 'psycopg'} & set(sys.modules)))"
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
