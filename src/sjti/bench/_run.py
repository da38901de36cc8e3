"""``run``: build the cases, refuse broken ones, time the rest, evaluate the targets."""

from __future__ import annotations

import statistics
from typing import Final, Literal

from ._cases import CaseError, build_cases, make_fixture, precheck
from ._result import BenchResult, Row, compute_ratios, library_versions, machine_info
from ._timing import measure

__all__ = ["FULL", "QUICK", "Stat", "run"]

Stat = Literal["median", "min"]
# (rounds, milliseconds per case per round)
QUICK: Final = (5, 2.0)
FULL: Final = (25, 20.0)
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
) -> BenchResult:
    """Time every case; raise :class:`CaseError` if an sjti or floor case misbehaves.

    A peer case that misbehaves is left out with a note instead: a peer's behaviour may
    change between versions, and the bench should still report on sjti.
    """
    default_rounds, default_ms = QUICK if quick else FULL
    rounds = rounds if rounds is not None else default_rounds
    target_ms = target_ms if target_ms is not None else default_ms
    if rounds < 1 or target_ms <= 0:
        raise ValueError("rounds and target_ms must be positive")

    cases, notes = build_cases(make_fixture())
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
    return BenchResult(
        rows=rows,
        ratios=compute_ratios({row.name: row.ns_per_op for row in rows}),
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
        },
    )
