"""A million-user cohort: seed, preview, revoke in batches, re-wrap under a new KEK.

``python -m sjti.bench.bulk`` (``--users N``, default 1 000 000; ``--quick``: 20 000)
seeds N users into an app users table (``AppUsersTable``: id, tenant, the secret columns;
an index on ``(tenant, id)``) on a SQLite file and on a scratch PostgreSQL database, then
on each:

1. previews and revokes the tenant holding 10% of the users
   (:meth:`~sjti.stores.sql.SqlSecretStore.preview_batches`, then
   :meth:`~sjti.stores.sql.SqlSecretStore.revoke_batches`);
2. previews and revokes everyone (``Cohort(rotated_before=<tomorrow>)``);
3. puts a new KEK first and re-wraps every secret (``rewrap``, the same keyset batches).

It reports users (rows) per second, the peak RSS growth of this process during each step
(sampled every 10 ms from /proc), the events written and the bus messages the relay sent
(one per committed batch), and the dry run's time against the revocation's. Each step is
checked, not just timed: the revoked users' keys changed and the others' did not, every
user still opens under the new ring alone after the re-wrap, and the events are exactly
one per batch, each listing at most :data:`~sjti.stores.MAX_LISTED_IDS` users.

The ``sjti bench`` rows (:func:`measures`) come from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from .. import Kek, KekRing
from .._core.wrapping import generate_user_key
from ..stores import MAX_LISTED_IDS, Cohort
from ..stores.base import RevocationEvent
from ._result import Measure

__all__ = [
    "DEFAULT_USERS",
    "QUICK_USERS",
    "BulkRun",
    "Step",
    "app_users_table",
    "details",
    "main",
    "measures",
    "row_name",
    "run_bulk",
]

T = TypeVar("T")
DEFAULT_USERS: Final = 1_000_000
QUICK_USERS: Final = 20_000
BATCH: Final = MAX_LISTED_IDS  # users per revocation batch / rewrap batch
TENANT: Final = "acme"  # every tenth user
SECTION: Final = "bulk revocation"
FILLFACTOR: Final = 70  # PostgreSQL: the users table leaves 30% of each page free
_SEED_CHUNK: Final = 20_000
_TABLE: Final = "bulk_users"
_EPOCH: Final = datetime(2020, 1, 1, tzinfo=UTC)
_EPOCH_TEXT: Final = "2020-01-01 00:00:00.000000"  # how SQLAlchemy stores it in SQLite


@dataclass(frozen=True, slots=True)
class Step:
    """One timed step on one database."""

    name: str  # "seed", "revoke_10pct", "revoke_all", "rewrap", "preview_*"
    rows: int
    seconds: float
    rss_growth_mb: float
    events: int = 0
    bus_messages: int = 0
    max_listed: int = 0  # the most user ids one event listed

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(slots=True)
class BulkRun:
    database: str  # "sqlite" or "postgresql"
    users: int
    steps: dict[str, Step] = field(default_factory=dict)

    def ratio(self, cohort: str) -> float:
        """The dry run's time over the revocation's (``cohort``: ``10pct`` or ``all``)."""
        return self.steps[f"preview_{cohort}"].seconds / self.steps[f"revoke_{cohort}"].seconds


# ---------------------------------------------------------------------------------------
# peak RSS, sampled


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def _peak_rss() -> Iterator[list[float]]:
    """Yields a one-item list that holds, after the block, the peak RSS growth in MB."""
    out = [0.0]
    start = _rss_bytes()
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        out[0] = (peak[0] - start) / 1e6


def _timed(name: str, rows: int, work: Callable[[], T]) -> tuple[Step, T]:
    with _peak_rss() as growth:
        started = time.perf_counter()
        value = work()
        seconds = time.perf_counter() - started
    return Step(name, rows, seconds, growth[0]), value


# ---------------------------------------------------------------------------------------
# seeding (the app's users table, filled as an app's import would: not what is measured)


def app_users_table(metadata: Any, name: str = _TABLE, *, secrets_too: bool = True) -> Any:
    """The app's users table the bulk bench seeds (and the scale bench sizes): id, tenant,
    an index on ``(tenant, id)``, and sjti's secret columns (``secrets_too``)."""
    import sqlalchemy as sa

    from ..stores.sql import secret_columns

    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.Text, nullable=False),
        *(secret_columns() if secrets_too else ()),
        sa.Index(f"{name}_tenant_id", "tenant", "id"),
    )


def _tenant(user: int) -> str:
    return TENANT if user % 10 == 0 else f"t{user % 1000}"


def _rows(ring: KekRing, start: int, stop: int) -> list[tuple[object, ...]]:
    return [
        (i, _tenant(i), ring.wrap(str(i), generate_user_key()).to_str(), 1, _EPOCH)
        for i in range(start, stop)
    ]


def _seed(engine: Any, ring: KekRing, users: int) -> None:
    """``users`` rows with ids 1..users through the raw driver, in chunks."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        for start in range(1, users + 1, _SEED_CHUNK):
            rows = _rows(ring, start, min(start + _SEED_CHUNK, users + 1))
            if isinstance(driver, sqlite3.Connection):
                driver.executemany(
                    f"INSERT INTO {_TABLE} (id, tenant, token_secret, token_version, "  # noqa: S608 - constant
                    "token_rotated_at) VALUES (?, ?, ?, ?, ?)",
                    [(*row[:4], _EPOCH_TEXT) for row in rows],
                )
            else:
                with (
                    driver.cursor() as cursor,
                    cursor.copy(
                        f"COPY {_TABLE} (id, tenant, token_secret, token_version, "
                        "token_rotated_at) FROM STDIN"
                    ) as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            driver.commit()
    finally:
        raw.close()
    # What a live table has after a bulk import: statistics, and on PostgreSQL the
    # visibility map and hint bits autovacuum sets after a bulk load.
    analyze = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"{analyze} {_TABLE}")


# ---------------------------------------------------------------------------------------
# one database


_LOG_TABLES: Final = {
    "audit_table": f"{_TABLE}_audit",
    "events_table": f"{_TABLE}_events",
    "nodes_table": f"{_TABLE}_nodes",
}


def _store(engine: Any, ring: KekRing, table: Any) -> Any:
    """A store on the bulk table, with its own audit, event and node tables."""
    from ..stores.sql import AppUsersTable, CohortColumns, SqlSecretStore

    layout = AppUsersTable(table, **_LOG_TABLES)
    return SqlSecretStore(
        engine, ring, layout, cohort_columns=CohortColumns(table, tenant="tenant")
    )


def _secrets_of(engine: Any, table: Any, ring: KekRing, users: Sequence[int]) -> dict[int, bytes]:
    import sqlalchemy as sa

    from .._core.wrapping import WrappedSecret

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.id, table.c.token_secret).where(table.c.id.in_(list(users)))
        ).all()
    return {int(i): ring.unwrap(str(i), WrappedSecret.from_str(text)) for i, text in rows}


def _revoke(store: Any, cohort: Cohort, name: str, expected: int) -> tuple[Step, Step]:
    """Preview, then revoke in batches; both checked against ``expected`` users.

    ``store`` is fresh: its one event listener stands for the bus relay."""
    preview_step, preview = _timed(
        f"preview_{name}", expected, lambda: store.preview_batches(cohort)
    )
    if preview.count != expected or len(preview.user_ids) != min(expected, MAX_LISTED_IDS):
        raise RuntimeError(f"{name}: the dry run found {preview.count} users, not {expected}")
    relayed: list[int] = []  # per event: the ids it lists (-1: none), not the ids

    def relay(event: RevocationEvent) -> None:  # one bus message per event
        relayed.append(-1 if event.user_ids is None else len(event.user_ids))

    store.add_event_listener(relay)

    def revoke() -> tuple[int, int]:
        batches = revoked = 0
        for batch in store.revoke_batches(cohort, batch_size=BATCH, actor="bench"):
            batches, revoked = batches + 1, revoked + batch.count
        return batches, revoked

    step, (batches, revoked) = _timed(f"revoke_{name}", expected, revoke)
    if revoked != expected or len(relayed) != batches:
        raise RuntimeError(f"{name}: revoked {revoked} users in {len(relayed)} events")
    if -1 in relayed:
        raise RuntimeError(f"{name}: an event did not list its users")
    listed = max(relayed, default=0)
    events = relayed
    step = Step(
        step.name, step.rows, step.seconds, step.rss_growth_mb, len(events), len(events), listed
    )
    return preview_step, step


def _drop(engine: Any) -> None:
    """Drop the bulk tables and forget their schema versions (the database may stay)."""
    import sqlalchemy as sa

    from ..stores._schema import version_table

    versions = version_table(sa.MetaData())
    scopes = [f"{kind}:{_LOG_TABLES[f'{kind}_table']}" for kind in ("audit", "events", "nodes")]
    with contextlib.suppress(Exception), engine.begin() as conn:
        for name in (_TABLE, *_LOG_TABLES.values()):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.execute(versions.delete().where(versions.c.scope.in_(scopes)))


def _one(database: str, url: str, users: int, progress: Callable[[str], None]) -> BulkRun:
    import sqlalchemy as sa

    from ..stores.sql import upgrade

    engine = sa.create_engine(url)
    run = BulkRun(database, users)
    ring = KekRing([Kek.generate("bulk1")])
    try:
        metadata = sa.MetaData()
        table = app_users_table(metadata)
        metadata.create_all(engine)
        if database == "postgresql":
            # Leave room in each page so a rotation's new row version fits beside the old
            # one: a HOT update, no index entries to write (see docs/storage.md).
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {_TABLE} SET (fillfactor = {FILLFACTOR})")
        store = _store(engine, ring, table)
        upgrade(engine, store.layout)
        run.steps["seed"], _ = _timed("seed", users, lambda: _seed(engine, ring, users))
        progress(f"{database}: seeded {users:,} users in {run.steps['seed'].seconds:.1f} s")
        watch = [1, 2, 10, 11, users - 1, users]  # tenant users: multiples of 10
        before = _secrets_of(engine, table, ring, watch)
        tenant = users // 10
        for step in _revoke(_store(engine, ring, table), Cohort(tenant=TENANT), "10pct", tenant):
            run.steps[step.name] = step
        after = _secrets_of(engine, table, ring, watch)
        changed = {u for u in watch if before[u] != after[u]}
        if changed != {u for u in watch if u % 10 == 0}:
            raise RuntimeError("10pct: the wrong users' keys changed")
        progress(f"{database}: revoked the 10% tenant ({tenant:,} users)")
        everyone = Cohort(rotated_before=datetime.now(UTC) + timedelta(days=1))
        for step in _revoke(_store(engine, ring, table), everyone, "all", users):
            run.steps[step.name] = step
        final = _secrets_of(engine, table, ring, watch)
        if any(final[u] == after[u] for u in watch):
            raise RuntimeError("all: a user's key did not change")
        progress(f"{database}: revoked everyone ({users:,} users)")
        store.close()
        new_ring = KekRing([Kek.generate("bulk2"), *ring.keks])
        rewrapper = _store(engine, new_ring, table)
        step, moved = _timed(
            "rewrap", users, lambda: sum(rewrapper.rewrap(batch_size=BATCH, actor="bench"))
        )
        run.steps["rewrap"] = step
        only_new = KekRing([new_ring.primary])
        if moved != users or _secrets_of(engine, table, only_new, watch) != final:
            raise RuntimeError(f"rewrap: moved {moved} of {users} secrets")
        progress(f"{database}: re-wrapped {moved:,} secrets under a new KEK")
        rewrapper.close()
    finally:
        _drop(engine)
        engine.dispose()
    return run


def run_bulk(
    users: int,
    *,
    postgres_url: str | None = None,
    database_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
    notes: list[str] | None = None,
) -> list[BulkRun]:
    """The bulk steps on a SQLite file, then on PostgreSQL: ``database_url``, a database
    to use as is (its ``bulk_*`` tables are made and dropped), or else a scratch database
    made on the ``postgres_url`` server and dropped; a server that does not answer is
    left out with a note. A step that does the wrong thing raises RuntimeError."""
    from ._backends import _postgres_scratch

    if users < 10:
        raise ValueError("users must be at least 10")
    notes = notes if notes is not None else []
    runs = []
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="sjti-bulk-"))
        runs.append(_one("sqlite", f"sqlite:///{Path(directory) / 'bulk.db'}", users, progress))
        if database_url is None and postgres_url is not None:
            scratch = _postgres_scratch(stack, postgres_url, notes)
            database_url = None if scratch is None else scratch[0]
        if database_url is not None:
            runs.append(_one("postgresql", database_url, users, progress))
    return runs


# ---------------------------------------------------------------------------------------
# bench rows


def row_name(database: str, what: str) -> str:
    """``sjti.bulk_<what>.<sqlite|postgresql>``."""
    return f"sjti.bulk_{what}.{database}"


def details(runs: Sequence[BulkRun]) -> dict[str, Any]:
    """How the bulk rows were made, for the bench's JSON and the note under the rows."""
    return {
        "users": runs[0].users if runs else 0,
        "batch": BATCH,
        "tenant_share": 0.1,
        "postgres_fillfactor": FILLFACTOR,
        "runs": {
            r.database: {k: {**asdict(s), "per_second": s.per_second} for k, s in r.steps.items()}
            for r in runs
        },
    }


def measures(runs: Sequence[BulkRun]) -> tuple[Measure, ...]:
    """The ``sjti bench`` rows: users/s (revocation, re-wrap), RSS growth, bus messages and
    the dry run against the revocation, per database."""
    out: list[Measure] = []
    for run in runs:
        db, steps = run.database, run.steps
        size = f"{run.users:,} users"
        all_, tenth = steps["revoke_all"], steps["revoke_10pct"]
        growth = max(s.rss_growth_mb for name, s in steps.items() if name != "seed")
        out += [
            Measure(row_name(db, "revoke_users_per_s"), all_.per_second, "users/s",
                    f"{db}: revoke a cohort of all {size}, batches of {BATCH:,}", SECTION),
            Measure(row_name(db, "revoke_10pct_users_per_s"), tenth.per_second, "users/s",
                    f"{db}: revoke the tenant holding 10% of {size}", SECTION),
            Measure(row_name(db, "rss_growth_mb"), growth, "MB",
                    f"{db}: peak RSS growth in any step but the seeding ({size})", SECTION),
            Measure(row_name(db, "revoke_bus_messages"), float(all_.bus_messages), "messages",
                    f"{db}: bus messages for the cohort of all (one per batch)", SECTION),
            Measure(row_name(db, "preview_vs_revoke_pct"),
                    100 * max(run.ratio("10pct"), run.ratio("all")), "%",
                    f"{db}: dry run time / revocation time, the worse of the two cohorts",
                    SECTION),
            Measure(row_name(db, "rewrap_rows_per_s"), steps["rewrap"].per_second, "rows/s",
                    f"{db}: re-wrap every secret under a new KEK, batches of {BATCH:,}", SECTION),
        ]  # fmt: skip
    return tuple(out)


# ---------------------------------------------------------------------------------------
# the command


def _print(runs: Sequence[BulkRun], out: Any) -> None:
    header = ("database", "step", "rows", "seconds", "rows/s", "RSS +MB", "events", "max listed")
    lines = [header]
    for run in runs:
        for step in run.steps.values():
            lines.append(
                (
                    run.database,
                    step.name,
                    f"{step.rows:,}",
                    f"{step.seconds:,.2f}",
                    f"{step.per_second:,.0f}",
                    f"{step.rss_growth_mb:,.1f}",
                    str(step.events),
                    str(step.max_listed),
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in
                        enumerate(zip(line, widths, strict=True))).rstrip(), file=out)  # fmt: skip
    for run in runs:
        print(
            f"{run.database}: dry run / revocation = {run.ratio('10pct'):.3f} (10%), "
            f"{run.ratio('all'):.3f} (all)",
            file=out,
        )


def main(argv: list[str] | None = None) -> int:
    from ._backends import DEFAULT_POSTGRES_URL, POSTGRES_ENV

    parser = argparse.ArgumentParser(prog="python -m sjti.bench.bulk", description=__doc__)
    parser.add_argument("--users", type=int, default=None, help=f"default {DEFAULT_USERS:,}")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS:,} users")
    parser.add_argument(
        "--postgres-url", default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", metavar="PATH", help="also write the steps as JSON")
    args = parser.parse_args(argv)
    users = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS)
    notes: list[str] = []
    try:
        runs = run_bulk(
            users,
            postgres_url=None if args.no_postgres else args.postgres_url,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            notes=notes,
        )
    except (RuntimeError, ValueError) as exc:
        print(f"sjti bulk: {exc}", file=sys.stderr)
        return 1
    _print(runs, sys.stdout)
    for note in notes:
        print(f"note: {note}", file=sys.stdout)
    if args.json:
        Path(args.json).write_text(json.dumps(details(runs), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
