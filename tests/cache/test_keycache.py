"""KeyCache without any service: bounds, coalescing, expiry, the epoch guard, fail closed."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import tracemalloc
from collections.abc import Callable

import pytest

from sjti import BackendError, ConfigurationError
from sjti.cache import KeyCache

from .conftest import FloatClock, wait_until

OLD = b"o" * 32
NEW = b"n" * 32


def fixed(value: bytes | None) -> Callable[[str], bytes | None]:
    def load(_user_id: str) -> bytes | None:
        return value

    return load


class CountingSource:
    """A source returning a fixed key per user, counting its calls."""

    def __init__(self, value: bytes | None = OLD) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, user_id: str) -> bytes | None:
        self.calls += 1
        return self.value


# -- bounds and eviction -------------------------------------------------------------------


def test_size_never_exceeds_max_size() -> None:
    """The cache is bounded whatever the traffic: memory cannot grow with the user count."""
    cache = KeyCache(max_size=100, trusted=True)
    for i in range(1000):
        cache.get_or_load(f"user-{i}", fixed(OLD))
        assert len(cache) <= 100
    stats = cache.stats()
    assert stats.size == len(cache)
    assert stats.evictions == 1000 - len(cache)


def test_recently_used_entry_survives_eviction_and_stale_one_goes() -> None:
    """Hot users stay cached while users not seen for a while are evicted first."""
    cache = KeyCache(max_size=100, trusted=True)
    source = CountingSource()
    for i in range(100):
        cache.get_or_load(f"user-{i}", source)
    cache.get_or_load("user-0", source)  # touched: recently used
    for i in range(100, 160):
        cache.get_or_load(f"user-{i}", source)
    assert "user-0" in cache
    assert "user-1" not in cache
    calls = source.calls
    cache.get_or_load("user-0", source)
    assert source.calls == calls  # still a hit


def test_hit_does_not_query_the_source() -> None:
    """The point of the cache: a second lookup of a user costs no query."""
    cache = KeyCache(trusted=True)
    source = CountingSource()
    assert cache.get_or_load("alice", source) == OLD
    assert cache.get_or_load("alice", source) == OLD
    assert source.calls == 1
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.loads) == (1, 1, 1)


@pytest.mark.parametrize("bad", [b"short", b"x" * 33, "a" * 32, bytearray(32)])
def test_source_must_return_32_bytes(bad: object) -> None:
    """A misconfigured source is refused loudly instead of caching garbage keys."""
    cache = KeyCache(trusted=True)
    with pytest.raises(ConfigurationError):
        cache.get_or_load("alice", lambda _u: bad)  # type: ignore[arg-type, return-value]
    assert len(cache) == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_size": 1}, {"max_age": 0}, {"negative_ttl": -1}, {"max_size": 10.5}]
)
def test_bad_configuration_is_refused(kwargs: dict[str, float]) -> None:
    """Nonsense bounds would silently disable the cache or its expiry."""
    with pytest.raises(ConfigurationError):
        KeyCache(**kwargs)  # type: ignore[arg-type]


# -- coalescing ----------------------------------------------------------------------------


def test_sixteen_threads_missing_one_user_cause_one_query() -> None:
    """A burst of requests for a cold user must not become a burst of database queries."""
    cache = KeyCache(trusted=True)
    release = threading.Event()
    calls = []

    def slow_source(user_id: str) -> bytes:
        calls.append(user_id)
        release.wait(5)
        return OLD

    results: list[bytes | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load("alice", slow_source)))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: cache.stats().coalesced == 15)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["alice"]
    assert results == [OLD] * 16


def test_a_failing_query_fails_every_waiter_and_is_retried_next_time() -> None:
    """Waiters must not hang on an error, and an error must not be cached."""
    cache = KeyCache(trusted=True)
    release = threading.Event()

    def broken(_user_id: str) -> bytes:
        release.wait(5)
        raise OSError("database down")

    errors: list[BaseException] = []

    def lookup() -> None:
        try:
            cache.get_or_load("alice", broken)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lookup) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: cache.stats().coalesced == 3)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 4
    assert cache.get_or_load("alice", fixed(OLD)) == OLD


@pytest.mark.anyio
async def test_sixteen_tasks_missing_one_user_await_one_query() -> None:
    """The asyncio path coalesces too: one await of the source for N tasks."""
    cache = KeyCache(trusted=True)
    release = asyncio.Event()
    calls = []

    async def slow_source(user_id: str) -> bytes:
        calls.append(user_id)
        await release.wait()
        return OLD

    tasks = [asyncio.create_task(cache.aget_or_load("alice", slow_source)) for _ in range(16)]
    while cache.stats().coalesced < 15:
        await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [OLD] * 16
    assert calls == ["alice"]
    assert cache.get_or_load("alice", fixed(NEW)) == OLD  # cached by the async fill


@pytest.mark.anyio
async def test_cancelling_one_waiter_does_not_cancel_the_query_for_the_others() -> None:
    """A client disconnecting mid-request must not fail every other request for the user."""
    cache = KeyCache(trusted=True)
    release = asyncio.Event()

    async def slow_source(_user_id: str) -> bytes:
        await release.wait()
        return OLD

    first = asyncio.create_task(cache.aget_or_load("alice", slow_source))
    second = asyncio.create_task(cache.aget_or_load("alice", slow_source))
    while cache.stats().coalesced < 1:
        await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == OLD
    assert first.cancelled()


# -- expiry --------------------------------------------------------------------------------


def test_unknown_user_is_remembered_for_negative_ttl_only() -> None:
    """Unknown users cost one query per negative_ttl, and a new user shows up after it."""
    clock = FloatClock()
    cache = KeyCache(negative_ttl=5, clock=clock, trusted=True)
    source = CountingSource(value=None)
    assert cache.get_or_load("ghost", source) is None
    clock.advance(4.9)
    assert cache.get_or_load("ghost", source) is None
    assert source.calls == 1
    assert cache.stats().negative_hits == 1
    source.value = OLD  # the user registers
    clock.advance(0.1)
    assert cache.get_or_load("ghost", source) == OLD
    assert source.calls == 2


def test_negative_ttl_zero_disables_negative_caching() -> None:
    """Operators can turn negative caching off entirely."""
    cache = KeyCache(negative_ttl=0, trusted=True)
    source = CountingSource(value=None)
    cache.get_or_load("ghost", source)
    cache.get_or_load("ghost", source)
    assert source.calls == 2


def test_entry_is_served_at_most_max_age_after_its_read() -> None:
    """max_age bounds staleness if an invalidation message is ever lost."""
    clock = FloatClock()
    cache = KeyCache(max_age=60, clock=clock, trusted=True)
    source = CountingSource()
    cache.get_or_load("alice", source)
    clock.advance(59.9)
    cache.get_or_load("alice", source)
    assert source.calls == 1
    clock.advance(0.1)
    source.value = NEW
    assert cache.get_or_load("alice", source) == NEW
    assert source.calls == 2
    assert cache.stats().expirations == 1


def test_max_age_counts_from_the_read_even_after_promotion() -> None:
    """Moving an entry between generations must not extend its life."""
    clock = FloatClock()
    cache = KeyCache(max_size=4, max_age=10, clock=clock, trusted=True)
    source = CountingSource()
    cache.get_or_load("alice", source)
    cache.get_or_load("bob", source)
    cache.get_or_load("carol", source)  # young was full: alice and bob are now old
    clock.advance(9)
    cache.get_or_load("alice", source)  # promoted back to young
    assert source.calls == 3
    clock.advance(1)
    cache.get_or_load("alice", source)
    assert source.calls == 4


# -- invalidation and the epoch guard ------------------------------------------------------


def test_invalidate_drops_named_users_and_none_drops_everyone() -> None:
    """Bus messages name users, or say 'everyone' for large cohorts."""
    cache = KeyCache(trusted=True)
    for user in ("alice", "bob", "carol"):
        cache.get_or_load(user, fixed(OLD))
    cache.get_or_load("ghost", fixed(None))
    cache.invalidate(["alice", "ghost", "nobody"])
    assert ("alice" in cache, "bob" in cache, "ghost" in cache) == (False, True, False)
    cache.invalidate(None)
    assert len(cache) == 0
    stats = cache.stats()
    assert (stats.invalidations, stats.clears) == (3, 1)


class BlockingSource:
    """Returns OLD on the first call, after ``release``; NEW afterwards."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, _user_id: str) -> bytes:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(5)
            return OLD
        return NEW


def _fill_in_background(cache: KeyCache, source: BlockingSource) -> list[bytes | None]:
    result: list[bytes | None] = []
    thread = threading.Thread(target=lambda: result.append(cache.get_or_load("alice", source)))
    thread.start()
    assert source.entered.wait(5)
    return result


def test_fill_that_read_before_an_invalidation_does_not_insert_its_stale_value() -> None:
    """The classic race: read old key, revocation arrives, old key cached for 60 s."""
    cache = KeyCache(trusted=True)
    source = BlockingSource()
    result = _fill_in_background(cache, source)
    cache.invalidate(["alice"])  # the revocation arrives while the read is in flight
    source.release.set()
    assert wait_until(lambda: result)
    assert result == [NEW]  # the waiter got a read made after the invalidation
    assert source.calls == 2
    assert cache.get_or_load("alice", fixed(OLD)) == NEW  # and only that was cached
    assert cache.stats().stale_fills == 1


def test_clear_during_a_fill_also_forces_a_re_read() -> None:
    """An 'everyone' message or a resync must catch fills in flight as well."""
    cache = KeyCache(trusted=True)
    source = BlockingSource()
    result = _fill_in_background(cache, source)
    cache.invalidate(None)
    source.release.set()
    assert wait_until(lambda: result)
    assert result == [NEW]
    assert source.calls == 2


def test_invalidating_another_user_does_not_force_a_re_read() -> None:
    """Revocations of other users must not turn every fill into two queries."""
    cache = KeyCache(trusted=True)
    source = BlockingSource()
    result = _fill_in_background(cache, source)
    cache.invalidate(["bob"])
    source.release.set()
    assert wait_until(lambda: result)
    assert result == [OLD]
    assert source.calls == 1


def test_fill_gives_up_closed_when_invalidations_never_stop() -> None:
    """A user invalidated during every read gets an error, never a possibly stale key."""
    cache = KeyCache(trusted=True)

    def racing(user_id: str) -> bytes:
        cache.invalidate([user_id])
        return OLD

    with pytest.raises(BackendError):
        cache.get_or_load("alice", racing)
    assert "alice" not in cache


@pytest.mark.anyio
async def test_async_fill_that_read_before_an_invalidation_reads_again() -> None:
    """The epoch guard holds on the asyncio path too."""
    cache = KeyCache(trusted=True)
    entered, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def source(_user_id: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            await release.wait()
            return OLD
        return NEW

    task = asyncio.create_task(cache.aget_or_load("alice", source))
    await entered.wait()
    cache.invalidate(["alice"])
    release.set()
    assert await task == NEW
    assert calls == 2


# -- fail closed ---------------------------------------------------------------------------


def test_untrusted_cache_reads_through_and_stores_nothing() -> None:
    """Without a bus a node cannot know about revocations: it must ask the source."""
    cache = KeyCache()  # never connected to a bus
    source = CountingSource()
    assert not cache.trusted
    for _ in range(3):
        assert cache.get_or_load("alice", source) == OLD
    assert source.calls == 3
    assert len(cache) == 0
    assert cache.stats().bypasses == 3


def test_losing_trust_drops_entries_and_resync_trusts_again_from_empty() -> None:
    """Bus lost: nothing cached may be served; back: start from a clean cache."""
    cache = KeyCache(trusted=True)
    source = CountingSource()
    cache.get_or_load("alice", source)
    cache.mark_untrusted()
    assert len(cache) == 0
    cache.get_or_load("alice", source)
    assert (source.calls, len(cache)) == (2, 0)
    cache.resync()
    assert cache.trusted
    cache.get_or_load("alice", source)
    cache.get_or_load("alice", source)
    assert source.calls == 3


def test_fill_in_flight_when_trust_is_lost_is_not_inserted() -> None:
    """A read started while trusted must not land in a cache that stopped being trusted."""
    cache = KeyCache(trusted=True)
    source = BlockingSource()
    result = _fill_in_background(cache, source)
    cache.mark_untrusted()
    source.release.set()
    assert wait_until(lambda: result)
    assert result == [NEW]
    assert len(cache) == 0


def test_trust_lease_runs_out_by_itself() -> None:
    """A bus that stops renewing (a hung listener) cannot keep the cache trusted."""
    clock = FloatClock()
    cache = KeyCache(clock=clock)
    cache.resync(lease=2)
    source = CountingSource()
    cache.get_or_load("alice", source)
    cache.get_or_load("alice", source)
    assert source.calls == 1
    clock.advance(2)
    assert not cache.trusted
    cache.get_or_load("alice", source)
    assert source.calls == 2
    cache.mark_trusted(lease=2)  # renewed by a live bus: entries were kept up to date
    cache.get_or_load("alice", source)
    assert source.calls == 2


# -- memory --------------------------------------------------------------------------------


def test_memory_per_cached_entry_is_at_most_200_bytes() -> None:
    """The issue's target: a node can cache 100k users in about 20 MB."""
    entries = 50_000
    secrets = [os.urandom(32) for _ in range(entries)]
    cache = KeyCache(max_size=2 * entries, trusted=True)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(entries):
            # a fresh id string per entry, as a decoded token's "sub" would be
            cache.get_or_load(f"user-{i:08d}", lambda _u, s=secrets[i]: s)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(cache) == entries
    per_entry = (after - before) / entries
    assert 100 < per_entry <= 200, per_entry
