"""Revocation rates for the scale rows (docs/scale.md): what a primary commits, what a
node applies.

* :func:`revocations_per_s`: single-user ``store.revoke`` calls (each one transaction:
  the key rotation, its audit row and its event) from ``threads`` threads, each on its
  own users, for ``seconds``; checked afterwards (one event per call, every revoked
  user's key changed).
* :func:`applied_per_s`: bus messages a node's cache applies per second when each names
  one user (decode + invalidate, the work of the listener thread of a bus without an
  event log), on a cache holding the users.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

from .. import Kek, KekRing
from .._core.invalidation import encode_invalidation
from ..cache import KeyCache
from ..cache._bus import apply_payload
from ._scale_disk import drop, owned_layout, seed_owned

__all__ = ["applied_per_s", "commit_ms", "revocations_per_s"]

_TABLE: Final = "scale_revoke"
_KEY: Final = bytes(32)


def _revoke_loop(store: Any, users: Sequence[str], deadline: float, done: list[int]) -> None:
    count = 0
    while time.perf_counter() < deadline:
        store.revoke(users[count % len(users)], actor="bench")
        count += 1
    done.append(count)


def revocations_per_s(
    url: str, threads: Sequence[int], *, users: int, seconds: float
) -> dict[int, float]:
    """``{threads: revocations/s}`` on the database at ``url`` (its ``scale_*`` tables
    are made and dropped). A run whose events or keys do not add up raises RuntimeError."""
    import sqlalchemy as sa

    from ..stores.sql import SqlSecretStore

    most = max(threads)
    engine = sa.create_engine(url, pool_size=most + 2, max_overflow=0)
    ring = KekRing([Kek.generate("scale1")])
    ids = [str(uuid.UUID(bytes=secrets.token_bytes(16))) for _ in range(users)]
    rates: dict[int, float] = {}
    try:
        seed_owned(engine, ring, _TABLE, ids, 0)
        store = SqlSecretStore(engine, ring, owned_layout(_TABLE))
        try:
            for count in threads:
                slices = [ids[n::count] for n in range(count)]
                watched = [s[0] for s in slices]
                before = [store.load_secret(u) for u in watched]
                first = store.latest_event_id()
                done: list[int] = []
                started = time.perf_counter()
                workers = [
                    threading.Thread(target=_revoke_loop, args=(store, s, started + seconds, done))
                    for s in slices
                ]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                elapsed = time.perf_counter() - started
                total = sum(done)
                events = store.latest_event_id() - first
                if len(done) != count or events != total:
                    raise RuntimeError(f"revoke: {total} calls wrote {events} events")
                if any(store.load_secret(u) == b for u, b in zip(watched, before, strict=True)):
                    raise RuntimeError("revoke: a revoked user's key did not change")
                rates[count] = total / elapsed
        finally:
            store.close()
    finally:
        drop(engine, [_TABLE])
        engine.dispose()
    return rates


def applied_per_s(users: int, messages: int) -> float:
    """Messages naming one user each, decoded and applied to a KeyCache holding ``users``
    users; best of three passes. Checked: every named user left the cache."""
    ids = [f"user-{n}" for n in range(users)]
    payloads = [encode_invalidation([ids[n % users]])[0] for n in range(messages)]
    best = 0.0
    for _ in range(3):
        cache = KeyCache(max_size=2 * users + 2, trusted=True)
        for user_id in ids:
            cache.get_or_load(user_id, lambda _: _KEY)
        started = time.perf_counter()
        for payload in payloads:
            apply_payload(cache, payload)
        elapsed = time.perf_counter() - started
        if len(cache) != max(0, users - messages):
            raise RuntimeError(f"apply: {len(cache)} users still cached")
        best = max(best, messages / elapsed)
    return best


def commit_ms(url: str, commits: int = 100) -> float:
    """The database's floor for a revocation: one single-row INSERT and its COMMIT through
    the raw driver (the write-ahead log flushed to disk), milliseconds, median."""
    import statistics

    import sqlalchemy as sa

    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        cursor = driver.cursor()
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE}_commit (n INTEGER)")
        driver.commit()
        times = []
        for n in range(commits):
            started = time.perf_counter()
            cursor.execute(f"INSERT INTO {_TABLE}_commit VALUES ({n})")  # noqa: S608 - constant
            driver.commit()
            times.append(time.perf_counter() - started)
        cursor.execute(f"DROP TABLE {_TABLE}_commit")
        driver.commit()
    finally:
        raw.close()
        engine.dispose()
    return 1e3 * statistics.median(times)
