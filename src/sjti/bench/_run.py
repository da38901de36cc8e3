"""``run``: build the cases, refuse broken ones, time the rest, evaluate the targets."""

from __future__ import annotations

import contextlib
import statistics
from typing import Any, Final, Literal

from ._backends import measure_outage, measure_revocation, open_backends
from ._cases import CaseError, build_cases, make_fixture, precheck
from ._devices import device_cases, device_measures
from ._result import BenchResult, Measure, Row, compute_ratios, library_versions, machine_info
from ._timing import measure

__all__ = ["BULK", "CATCHUP", "FULL", "QUICK", "REVOCATIONS", "Stat", "run"]

Stat = Literal["median", "min"]
# (rounds, milliseconds per case per round)
QUICK: Final = (5, 2.0)
FULL: Final = (25, 20.0)
# revocations timed across nodes: (quick, full)
REVOCATIONS: Final = (20, 200)
# catch-up after an outage, (working set, events during the outage, trials): (quick, full)
CATCHUP: Final = ((500, 250, 1), (10_000, 10_000, 3))
# users in the bulk revocation cohort: (quick, full), as in sjti.bench.bulk (imported late:
# ``python -m sjti.bench.bulk`` must not find it already imported by this package)
BULK: Final = (20_000, 1_000_000)
_OVERHEAD: Final = "(loop overhead)"


def _nothing() -> None:
    return None


def run(
    quick: bool = False,
    *,
    rounds: int | None = None,
    target_ms: float | None = None,
    stat: Stat = "median",
    seed: int = 0,
    postgres_url: str | None = None,
    redis_url: str | None = None,
    revocations: int | None = None,
    bulk_users: int | None = None,
    scale: bool = True,
) -> BenchResult:
    """Time every case; raise :class:`CaseError` if an sjti or floor case misbehaves.

    A peer case that misbehaves is left out with a note instead: a peer's behaviour may
    change between versions, and the bench should still report on sjti.

    ``postgres_url`` (a server: the bench works in a scratch database it creates and
    drops) adds ``sjti.verify_full_postgres.HS256``; with ``redis_url`` too, revocation
    across three node processes is measured once after the timed loop (``revocations``
    of them; 20 quick, 200 otherwise), plainly and acknowledged (``wait="all"``). ``None``
    leaves a service out; a service that does not answer is left out with a note.

    The catch-up after a bus outage (:data:`CATCHUP` sizes) runs on the scratch
    PostgreSQL database and the Redis bus when they answer, else on a SQLite file and the
    log-polling bus.

    The bulk revocation (:mod:`sjti.bench.bulk`: ``bulk_users`` users, :data:`BULK` by
    default, 0 to leave it out) runs on a SQLite file and the scratch PostgreSQL; the
    scale rows (:mod:`sjti.bench._scale`, ``scale=False`` leaves them out) run last, on
    the same databases, and derive from the catch-up and bulk details.
    """
    default_rounds, default_ms = QUICK if quick else FULL
    rounds = rounds if rounds is not None else default_rounds
    target_ms = target_ms if target_ms is not None else default_ms
    revocations = revocations if revocations is not None else REVOCATIONS[not quick]
    bulk_users = bulk_users if bulk_users is not None else BULK[not quick]
    if rounds < 1 or target_ms <= 0 or revocations < 1:
        raise ValueError("rounds, target_ms and revocations must be positive")
    if bulk_users and bulk_users < 10:
        raise ValueError("bulk users must be 0 (none) or at least 10")

    with contextlib.ExitStack() as stack:  # closes engines, drops the scratch database
        fx = make_fixture()
        backend_notes: list[str] = []
        backends = open_backends(
            fx, stack, postgres_url=postgres_url, redis_url=redis_url, notes=backend_notes
        )
        cases, notes = build_cases(fx, [*backends.cases, *device_cases(fx)])
        notes.extend(backend_notes)
        timed = []
        for case in cases:
            try:
                precheck(case)
            except CaseError as exc:
                if case.group != "peer":
                    raise
                notes.append(f"not timed, failed its check: {exc}")
                continue
            timed.append(case)

        loops, samples = measure(
            [*((c.name, c.fn) for c in timed), (_OVERHEAD, _nothing)],
            rounds=rounds,
            target_ns=round(target_ms * 1e6),
            seed=seed,
        )

        # Not a per-op timing: measured once, after the loop, outside the interleaving.
        measures: tuple[Measure, ...] = device_measures()
        propagation: dict[str, Any] | None = None
        acknowledgement: dict[str, Any] | None = None
        catchup: dict[str, Any] | None = None
        bulk: dict[str, Any] | None = None
        if backends.database_url is not None and backends.redis_url is not None:
            outcome = measure_revocation(backends.database_url, backends.redis_url, revocations)
            if isinstance(outcome, str):
                notes.append(outcome)
            else:
                measures = outcome.measures
                propagation, acknowledgement = outcome.propagation, outcome.acknowledgement
        if backends.sql:
            users, events, trials = CATCHUP[not quick]
            caught_up, catchup = measure_outage(
                backends.database_url,
                backends.redis_url,
                stack,
                users=users,
                events=events,
                trials=trials,
            )
            measures += caught_up
        if backends.sql and bulk_users:
            from .bulk import details, run_bulk
            from .bulk import measures as measures_of

            try:
                runs = run_bulk(bulk_users, database_url=backends.database_url)
            except RuntimeError as exc:
                raise CaseError(f"bulk revocation: {exc}") from exc
            measures += measures_of(runs)
            bulk = details(runs)
        scaled: dict[str, Any] | None = None
        if scale and backends.sql:  # its tables need SQLAlchemy (the sql extra)
            from ._scale import FULL as SCALE_FULL
            from ._scale import QUICK as SCALE_QUICK
            from ._scale import measure_scale

            try:
                rows_, scaled = measure_scale(
                    SCALE_QUICK if quick else SCALE_FULL,
                    database_url=backends.database_url,
                    catchup=catchup,
                    bulk=bulk,
                )
            except RuntimeError as exc:
                raise CaseError(f"scale: {exc}") from exc
            measures += rows_

    pick = statistics.median if stat == "median" else min
    rows = tuple(
        Row(
            name=case.name,
            group=case.group,
            kind=case.kind,
            ns_per_op=float(pick(samples[case.name])),
            min_ns=min(samples[case.name]),
            median_ns=float(statistics.median(samples[case.name])),
            max_ns=max(samples[case.name]),
            loops=loops[case.name],
            rounds=rounds,
        )
        for case in timed
    )
    values = {
        **{row.name: row.ns_per_op for row in rows},
        **{m.name: m.value for m in measures},
    }
    return BenchResult(
        rows=rows,
        ratios=compute_ratios(values),
        machine=machine_info(),
        versions=library_versions(),
        notes=tuple(notes),
        params={
            "quick": quick,
            "rounds": rounds,
            "target_ms": target_ms,
            "stat": stat,
            "seed": seed,
            "loop_overhead_ns": float(pick(samples[_OVERHEAD])),
            "postgres": backends.shown.get("postgres"),
            "redis": backends.shown.get("redis"),
            "bulk_users": bulk_users,
            "scale": scale,
        },
        measures=measures,
        propagation=propagation,
        acknowledgement=acknowledgement,
        catchup=catchup,
        bulk=bulk,
        scale=scaled,
    )
