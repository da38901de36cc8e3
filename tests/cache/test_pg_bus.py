"""The PostgreSQL LISTEN/NOTIFY bus against a real server."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Generator

import psycopg
import pytest

from sjti._core.invalidation import encode_invalidation
from sjti.cache import KeyCache
from sjti.cache.pg_bus import AsyncPgNotifyBus, PgNotifyBus, libpq_url

from .conftest import wait_until

pytestmark = pytest.mark.service

KEY = b"k" * 32


def _fill(cache: KeyCache, *users: str) -> None:
    for user in users:
        cache.get_or_load(user, lambda _u: KEY)


def _notify(url: str, channel: str, payload: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def _terminate(url: str, application_name: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


@pytest.fixture
def channel() -> str:
    return f"sjti_test_{secrets.token_hex(4)}"


@pytest.fixture
def app_name() -> str:
    return f"sjti-test-{secrets.token_hex(4)}"


@pytest.fixture
def bus_factory(
    postgres_url: str, channel: str, app_name: str
) -> Generator[Callable[..., PgNotifyBus], None, None]:
    started: list[PgNotifyBus] = []

    def make(cache: KeyCache, **options: float) -> PgNotifyBus:
        bus = PgNotifyBus(
            cache,
            postgres_url,
            channel=channel,
            application_name=app_name,
            health_check_interval=options.pop("health_check_interval", 0.2),
            **options,
        ).start()
        started.append(bus)
        assert bus.wait_connected(10)
        return bus

    yield make
    for bus in started:
        bus.close()


def test_pg_notify_in_any_transaction_drops_the_user(
    bus_factory: Callable[..., PgNotifyBus], postgres_url: str, channel: str
) -> None:
    """A SQL store NOTIFYs inside its revocation transaction; every node must apply it."""
    cache = KeyCache()
    bus_factory(cache)
    _fill(cache, "alice", "bob")
    [message] = encode_invalidation(["alice"])
    _notify(postgres_url, channel, message)
    assert wait_until(lambda: "alice" not in cache, timeout=2)
    assert "bob" in cache


def test_publish_splits_large_cohorts_and_every_id_is_dropped(
    bus_factory: Callable[..., PgNotifyBus],
) -> None:
    """NOTIFY payloads stop at 8000 bytes: a big revocation must still reach every id."""
    cache = KeyCache()
    bus = bus_factory(cache)
    users = [f"user-{i:06d}" for i in range(3000)]
    _fill(cache, *users, "bystander")
    assert bus.publish(users) > 1
    assert wait_until(lambda: len(cache) == 1, timeout=3)
    assert "bystander" in cache


def test_terminated_backend_fails_closed_and_reconnects(
    bus_factory: Callable[..., PgNotifyBus], postgres_url: str, channel: str, app_name: str
) -> None:
    """pg_terminate_backend: bypass the cache at once, miss nothing, come back alone."""
    cache = KeyCache()
    bus = bus_factory(cache, reconnect_min=1.0, reconnect_max=1.0)
    _fill(cache, "alice")
    assert _terminate(postgres_url, app_name) == 1
    assert wait_until(lambda: not cache.trusted, timeout=bus.health_check_interval + 0.2)
    assert len(cache) == 0
    # Revocation during the outage: the NOTIFY reaches nobody.
    [message] = encode_invalidation(["alice"])
    _notify(postgres_url, channel, message)
    assert cache.get_or_load("alice", lambda _u: KEY) == KEY  # read through...
    assert len(cache) == 0  # ...and not stored
    assert wait_until(lambda: cache.trusted, timeout=5)
    stats = cache.stats()
    assert (stats.bus_connects, stats.bus_disconnects, stats.bus_state) == (2, 1, "connected")
    _fill(cache, "alice")
    assert "alice" in cache


@pytest.mark.anyio
async def test_async_pg_bus_applies_notify_and_recovers(
    postgres_url: str, channel: str, app_name: str
) -> None:
    """The asyncio variant keeps the same promises."""
    cache = KeyCache()
    bus = AsyncPgNotifyBus(
        cache,
        postgres_url,
        channel=channel,
        application_name=app_name,
        health_check_interval=0.2,
        reconnect_min=0.5,
    )

    async def until(predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async with bus:
        assert await bus.wait_connected(10)
        _fill(cache, "alice")
        assert await bus.publish(["alice"]) == 1
        assert await until(lambda: "alice" not in cache, 2)
        _fill(cache, "alice")
        assert await asyncio.to_thread(_terminate, postgres_url, app_name) == 1
        assert await until(lambda: not cache.trusted, 1)
        assert "alice" not in cache
        assert await until(lambda: cache.trusted, 5)
    assert (bus.state, cache.trusted) == ("closed", False)
