"""Helpers for the cache and bus tests: a store shim, polling with a deadline, a float
clock, a redis-server of our own that can be killed and restarted, and a SQLite store
with an event log (``store``; a module may define its own)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sjti import Kek, KekRing
from sjti.stores import MemorySecretStore
from sjti.stores.sql import OwnedTable, SqlSecretStore, upgrade

from ..services import RedisProcess

__all__ = ["KEY_RING", "FloatClock", "RedisProcess", "StoreSource", "wait_until"]

KEY_RING = KekRing([Kek.generate("k1")])


@pytest.fixture
def anyio_backend() -> str:
    """redis.asyncio and the cache's async flights are asyncio-only."""
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Generator[SqlSecretStore, None, None]:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/log.db")
    layout = OwnedTable("secrets", events_table="events", nodes_table="nodes")
    upgrade(engine, layout)
    yield SqlSecretStore(engine, KEY_RING, layout)
    engine.dispose()


class StoreSource:
    """``load_secret`` over the in-memory store (until stores grow it), counting calls."""

    def __init__(self, store: MemorySecretStore) -> None:
        self.store = store
        self.calls = 0

    def load_secret(self, user_id: str) -> bytes | None:
        self.calls += 1
        key = self.store.load(user_id)
        return None if key is None else key.secret_bytes()


class FloatClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed; the last answer."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(0.005)
    return True
