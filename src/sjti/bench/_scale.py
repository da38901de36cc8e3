"""The constants behind docs/scale.md, measured: the "scale" rows of ``sjti bench``.

* Bytes per user on disk (:mod:`._scale_disk`): sjti's own table and the secret columns
  of an app users table, without devices and with :data:`~._scale_disk.DEVICES`, on a
  SQLite file and (when it answers) the scratch PostgreSQL database; the owned table's
  indexes per user.
* Bytes per user in a node's cache: tracemalloc over a real
  :class:`~sjti.cache.KeyCache` filled with ``entries`` users (36-character UUID ids
  without and with devices, and decimal ids), divided by the entries it holds.
* The hot set for a 99% hit rate under Zipf(s), s = 1.0 and 1.2 (:mod:`._scale_zipf`): a
  real KeyCache driven with a Zipf stream at two small user counts (the smallest
  ``max_size`` reaching 99%, by bisection), next to the model of its policy at the same
  counts; the model at 100 million users, scaled by the worst measured/model ratio, is the
  derived row.
* Revocations per second (:mod:`._scale_rates`): single-user ``revoke`` from k threads,
  the commit floor (PostgreSQL), and what one node's cache applies per second (one-user
  messages in process; events replayed from the log, from the catch-up rows).
* The time to revoke a 10 million-user tenant: 10 million over the bulk bench's tenant
  revocation rate (:mod:`sjti.bench.bulk`, same run).

``python -m sjti.bench._scale`` runs only these (and the catch-up and bulk steps they
derive from); ``sjti bench`` runs them after its other rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from .._core.binding import USER_KEY_SIZE, UserKey, new_device_id
from ..cache import KeyCache
from . import _scale_zipf as zipf
from ._result import Measure
from ._scale_disk import DEVICES, measure_disk
from ._scale_rates import applied_per_s, commit_ms, revocations_per_s

__all__ = ["FULL", "QUICK", "SECTION", "TARGET", "TENANT", "ZIPF_S", "Sizes", "measure_scale"]

SECTION: Final = "scale"
TARGET: Final = 0.99  # the hit rate the hot set must reach
ZIPF_S: Final = (1.0, 1.2)
TENANT: Final = 10_000_000  # users in the tenant revoked at once
USERS_100M: Final = 100_000_000


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each scale measurement does."""

    disk_users: int  # users seeded per table
    cache_entries: int  # users in the KeyCache sized by tracemalloc
    zipf_users: tuple[int, ...]  # user counts the Zipf streams run over
    stream_per_user: int  # Zipf requests per user (the first half warms the cache up)
    revoke_users: int  # users seeded for the revocation rate
    revoke_seconds: float  # per thread count
    threads: tuple[int, ...]
    messages: int  # one-user bus messages applied


QUICK: Final = Sizes(10_000, 5_000, (300, 1_000), 40, 1_000, 0.3, (1, 4), 10_000)
FULL: Final = Sizes(200_000, 200_000, (10_000, 40_000), 40, 20_000, 3.0, (1, 2, 4, 8), 200_000)


def _row(name: str, value: float, unit: str, description: str) -> Measure:
    return Measure(f"sjti.scale_{name}", value, unit, description, SECTION)


# ---------------------------------------------------------------------------------------
# a node's cache


def _new_id(kind: str, n: int) -> str:
    if kind == "int":
        return str(10_000_000 + n)  # 8 digits: the ids of 100M users
    return str(uuid.UUID(bytes=secrets.token_bytes(16)))


def cache_bytes(kind: str, devices: int, entries: int) -> float:
    """Bytes a KeyCache holds per entry (the id string, the entry, the dict slots), by
    tracemalloc, with ``max_size == entries`` after ``entries`` fills: both generations
    full, as in steady state. Each id is made in the loop, as a request's own would be:
    only the cache keeps it."""
    secret = bytes(USER_KEY_SIZE)
    sids = [new_device_id() for _ in range(devices)]
    record = UserKey(secret, sids).record() if devices else secret
    cache = KeyCache(max_size=entries, trusted=True)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(entries):
            cache.get_or_load(_new_id(kind, n), lambda _: record)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    if len(cache) != entries:
        raise RuntimeError(f"cache: holds {len(cache)} entries, not {entries}")
    return held / entries


# ---------------------------------------------------------------------------------------
# the hot set


def hot_set(sizes: Sizes, seed: int = 0) -> dict[str, Any]:
    """Per s: the measured and modelled smallest ``max_size`` for 99% at each user count,
    the hit-rate curve at the largest, and the model (and exact Zipf CDF) at 100M."""
    out: dict[str, Any] = {}
    for s in ZIPF_S:
        runs = []
        for users in sizes.zipf_users:
            length = sizes.stream_per_user * users
            stream = zipf.zipf_stream(users, s, length, seed)
            warm = length // 2
            measured = zipf.smallest_size(stream, users, warm, TARGET)
            model = zipf.two_gen_size_for(users, s, TARGET)
            runs.append(
                {
                    "users": users,
                    "requests": length - warm,
                    "measured_size": measured,
                    "model_size": model,
                    "ideal_size": zipf.hot_set(users, s, TARGET),
                    "measured_hit_rate_at_model_size": zipf.measured_hit_rate(
                        stream, max(2, model), warm
                    ),
                }
            )
        users = sizes.zipf_users[-1]
        stream = zipf.zipf_stream(users, s, sizes.stream_per_user * users, seed + 1)
        warm = len(stream) // 2
        curve = [
            {
                "size_of_users": fraction,
                "measured": zipf.measured_hit_rate(stream, max(2, int(fraction * users)), warm),
                "model": zipf.two_gen_hit_rate(max(2, int(fraction * users)), users, s),
                "ideal": zipf.ideal_hit_rate(int(fraction * users), users, s),
            }
            for fraction in (0.1, 0.25, 0.5, 1.0, 1.5)
        ]
        error = max(r["measured_size"] / r["model_size"] for r in runs)
        model_100m = zipf.two_gen_size_for(USERS_100M, s, TARGET)
        out[f"{s:.1f}"] = {
            "runs": runs,
            "curve": curve,
            "measured_over_model": error,
            "model_size_100m": model_100m,
            "derived_size_100m": min(2 * USERS_100M, round(model_100m * max(1.0, error))),
            "ideal_size_100m": zipf.hot_set(USERS_100M, s, TARGET),
        }
    return out


def _hot_rows(hot: Mapping[str, Any]) -> list[Measure]:
    rows = []
    for s, d in hot.items():
        last = d["runs"][-1]
        users = last["users"]
        rows += [
            _row(f"hot_set_99_pct.s{s}", 100 * last["measured_size"] / users, "% of users",
                 f"Zipf s={s}, {users:,} users: smallest KeyCache max_size with a 99% hit "
                 "rate (measured)"),
            _row(f"hot_set_99_model_pct.s{s}", 100 * last["model_size"] / users, "% of users",
                 f"Zipf s={s}, {users:,} users: the same, from the model of the policy"),
            _row(f"hot_set_99_100m_pct.s{s}", 100 * d["derived_size_100m"] / USERS_100M,
                 "% of users", f"Zipf s={s}, 100M users: the model x the worst measured/"
                 "model ratio (derived)"),
        ]  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------
# everything


def _disk_rows(database: str, tables: Mapping[str, Any]) -> list[Measure]:
    base = tables["app_base"].total
    rows = []
    for devices in (0, DEVICES):
        owned, app = tables[f"owned_{devices}"], tables[f"app_{devices}"]
        rows += [
            _row(f"disk_bytes_per_user.{database}.owned_{devices}dev", owned.total / owned.users,
                 "bytes", f"{database}: sjti's own table, {devices} devices, all indexes"),
            _row(f"disk_bytes_per_user.{database}.app_{devices}dev",
                 (app.total - base) / app.users, "bytes",
                 f"{database}: what the secret columns add to an app users table, "
                 f"{devices} devices"),
        ]  # fmt: skip
    owned = tables["owned_0"]
    rows.append(
        _row(f"index_bytes_per_user.{database}.owned", owned.index_total / owned.users,
             "bytes", f"{database}: sjti's own table, its three indexes")
    )  # fmt: skip
    return rows


def _derived_rows(
    catchup: Mapping[str, Any] | None, bulk: Mapping[str, Any] | None
) -> list[Measure]:
    rows = []
    replay = (catchup or {}).get("replay", {}).get("catchup_ms")
    if catchup and replay:
        rows.append(
            _row("node_applied_per_s.replay", 1e3 * catchup["events"] / replay, "events/s",
                 f"one node replays one-user events from the log ({catchup['database']}, "
                 "the catch-up rows)")
        )  # fmt: skip
    for database, steps in ((bulk or {}).get("runs") or {}).items():
        rate = steps.get("revoke_10pct", {}).get("per_second")
        if not rate:  # a bulk run without the tenant step: nothing to derive from
            continue
        rows.append(
            _row(f"revoke_10m_tenant_s.{database}", TENANT / rate, "s",
                 f"{database}: 10M users / the bulk tenant revocation's users/s (derived)")
        )  # fmt: skip
    return rows


def measure_scale(
    sizes: Sizes,
    *,
    database_url: str | None,
    catchup: Mapping[str, Any] | None = None,
    bulk: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[tuple[Measure, ...], dict[str, Any]]:
    """The scale rows and how they were made. ``database_url``: a PostgreSQL database to
    use as is (its ``scale_*`` tables are made and dropped), or None; ``catchup`` and
    ``bulk``: the details of this run's catch-up and bulk rows, to derive from."""
    started = time.perf_counter()
    rows: list[Measure] = []
    details: dict[str, Any] = {"sizes": asdict(sizes), "disk": {}, "revocations_per_s": {}}
    with tempfile.TemporaryDirectory(prefix="sjti-scale-") as directory:
        urls = {"sqlite": f"sqlite:///{Path(directory) / 'scale.db'}"}
        if database_url is not None:
            urls["postgresql"] = database_url
        for database, url in urls.items():
            tables = measure_disk(url, sizes.disk_users, progress)
            details["disk"][database] = {k: {**asdict(t), "index_total": t.index_total}
                                         for k, t in tables.items()}  # fmt: skip
            rows += _disk_rows(database, tables)
            threads = sizes.threads if database == "postgresql" else (1,)
            rates = revocations_per_s(
                url, threads, users=sizes.revoke_users, seconds=sizes.revoke_seconds
            )
            details["revocations_per_s"][database] = rates
            best = max(rates, key=rates.__getitem__)
            rows.append(
                _row(f"revocations_per_s.{database}", rates[best], "revocations/s",
                     f"{database}: single-user revoke (rotation + audit + event, one "
                     f"transaction each), best of {', '.join(map(str, threads))} threads "
                     f"({best})")
            )  # fmt: skip
            progress(f"{database}: {rates[best]:,.0f} revocations/s")
        if database_url is not None:
            floor = commit_ms(database_url)
            details["commit_ms"] = floor
            rows.append(
                _row("commit_ms.postgresql", floor, "ms",
                     "postgresql: one-row INSERT + COMMIT through the raw driver (median)")
            )  # fmt: skip
    for kind, devices in (("uuid", 0), ("uuid", DEVICES), ("int", 0)):
        value = cache_bytes(kind, devices, sizes.cache_entries)
        rows.append(
            _row(f"cache_bytes_per_user.{kind}_{devices}dev", value, "bytes",
                 f"a node's KeyCache, {'36-char UUID' if kind == 'uuid' else '8-digit'} "
                 f"ids, {devices} devices (tracemalloc, {sizes.cache_entries:,} entries)")
        )  # fmt: skip
    applied = applied_per_s(sizes.messages, sizes.messages)
    rows.append(
        _row("node_applied_per_s.message", applied, "messages/s",
             "one node's cache: one-user bus messages decoded and applied (no event log)")
    )  # fmt: skip
    hot = hot_set(sizes)
    details["hot_set"] = hot
    rows += _hot_rows(hot)
    rows += _derived_rows(catchup, bulk)
    details["seconds"] = time.perf_counter() - started
    details["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return tuple(rows), details


# ---------------------------------------------------------------------------------------
# the command


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m sjti.bench._scale``: the scale rows alone (with the catch-up and bulk
    steps they derive from), as a table and optionally JSON."""
    from ._backends import (
        DEFAULT_POSTGRES_URL,
        DEFAULT_REDIS_URL,
        POSTGRES_ENV,
        REDIS_ENV,
        _postgres_scratch,
        measure_outage,
    )
    from ._run import BULK, CATCHUP
    from .bulk import details as bulk_details
    from .bulk import run_bulk

    parser = argparse.ArgumentParser(prog="python -m sjti.bench._scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the suite's sizes")
    parser.add_argument(
        "--bulk-users", type=int, default=None, help="users in the bulk run (1M; 20 000 quick)"
    )
    parser.add_argument(
        "--postgres-url", default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL))
    parser.add_argument("--no-services", action="store_true", help="SQLite only")
    parser.add_argument("--json", metavar="PATH", help="also write rows and details as JSON")
    args = parser.parse_args(argv)
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        scratch = None if args.no_services else _postgres_scratch(stack, args.postgres_url, notes)
        database_url = None if scratch is None else scratch[0]
        users, events, trials = CATCHUP[not args.quick]
        redis_url = None if args.no_services or database_url is None else args.redis_url
        _, catchup = measure_outage(database_url, redis_url, stack, users=users, events=events,
                                    trials=trials)  # fmt: skip
        _say(f"catch-up: {catchup['events']:,} events on {catchup['database']}")
        bulk_users = args.bulk_users if args.bulk_users is not None else BULK[not args.quick]
        bulk = bulk_details(run_bulk(bulk_users, database_url=database_url, progress=_say))
        rows, details = measure_scale(
            QUICK if args.quick else FULL,
            database_url=database_url,
            catchup=catchup,
            bulk=bulk,
            progress=_say,
        )
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name.ljust(width)}  {r.value:>16,.2f} {r.unit:<14} {r.description}")
    for note in notes:
        print(f"note: {note}")
    if args.json:
        document = {"rows": [asdict(r) for r in rows], "scale": details, "notes": notes}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
