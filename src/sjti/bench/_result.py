"""What a bench run produces: rows, the target ratios, the machine and the versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._cases import PEERS, Group, Kind

__all__ = [
    "BenchResult",
    "Ratio",
    "Row",
    "compute_ratios",
    "library_versions",
    "machine_info",
]

_DISTRIBUTIONS: Final = (
    "sjti",
    "cryptography",
    "orjson",
    "pybase64",
    *(dist for _, dist, _ in PEERS),
    "rich",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One timed case: the reported ns/op and the spread over rounds."""

    name: str
    group: Group
    kind: Kind
    ns_per_op: float
    min_ns: float
    median_ns: float
    max_ns: float
    loops: int
    rounds: int

    @property
    def us_per_op(self) -> float:
        return self.ns_per_op / 1e3

    @property
    def ops_per_s(self) -> float:
        return 1e9 / self.ns_per_op


@dataclass(frozen=True, slots=True)
class Ratio:
    """A target from the issue, and whether this run met it.

    For ``op == ">="`` the value is how many times faster ``subject`` is than ``baseline``
    (baseline time / subject time); for ``"<="`` it is subject time / baseline time.
    ``value`` is ``None`` when a row is missing (e.g. no peer installed).
    """

    name: str
    description: str
    subject: str
    baseline: str | None
    value: float | None
    op: Literal[">=", "<="]
    target: float

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target


_PEER_DECODE: Final = tuple(f"{label}.decode.HS256" for label, _, _ in PEERS)
_PEER_ENCODE: Final = tuple(f"{label}.encode.HS256" for label, _, _ in PEERS)
# name, description, subject, candidate baselines (the fastest present one is used), op, target
_TARGETS: Final[tuple[tuple[str, str, str, tuple[str, ...], Literal[">=", "<="], float], ...]] = (
    (
        "boundary_hs256_vs_fastest_peer_decode",
        "boundary HS256 vs fastest peer decode",
        "sjti.verify_boundary.HS256",
        _PEER_DECODE,
        ">=",
        3.5,
    ),
    (
        "full_hs256_vs_fastest_peer_decode",
        "full two-layer HS256 vs fastest peer decode",
        "sjti.verify_full.HS256",
        _PEER_DECODE,
        ">=",
        2.5,
    ),
    (
        "issue_hs256_vs_fastest_peer_encode",
        "issue HS256 vs fastest peer encode",
        "sjti.issue.HS256",
        _PEER_ENCODE,
        ">=",
        2.0,
    ),
    (
        "boundary_eddsa_vs_ed25519_floor",
        "boundary EdDSA vs Ed25519 verify alone",
        "sjti.verify_boundary.EdDSA",
        ("floor.ed25519_verify",),
        "<=",
        1.1,
    ),
)


def compute_ratios(ns_per_op: Mapping[str, float]) -> tuple[Ratio, ...]:
    """The issue's targets, evaluated on ``{row name: ns/op}``."""
    ratios = []
    for name, description, subject, candidates, op, target in _TARGETS:
        present = [c for c in candidates if c in ns_per_op]
        baseline = min(present, key=ns_per_op.__getitem__) if present else None
        value: float | None = None
        if baseline is not None and subject in ns_per_op:
            base, mine = ns_per_op[baseline], ns_per_op[subject]
            value = base / mine if op == ">=" else mine / base
        ratios.append(Ratio(name, description, subject, baseline, value, op, target))
    return tuple(ratios)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    return {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": _cpu_model(),
        "cpus": str(os.cpu_count() or "unknown"),
    }


def library_versions() -> dict[str, str]:
    """Installed versions of sjti, its dependencies and the peers (absent ones left out)."""
    versions = {}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True, slots=True)
class BenchResult:
    rows: tuple[Row, ...]
    ratios: tuple[Ratio, ...]
    machine: dict[str, str]
    versions: dict[str, str]
    notes: tuple[str, ...]
    params: dict[str, Any]

    def ns_per_op(self) -> dict[str, float]:
        return {row.name: row.ns_per_op for row in self.rows}

    @property
    def missed(self) -> tuple[Ratio, ...]:
        """Targets this run did not meet (targets that could not be computed are not here)."""
        return tuple(r for r in self.ratios if r.passed is False)

    def to_json(self) -> dict[str, Any]:
        """``{"rows": [{"name", "ns_per_op"}], ...}``, with the rest as extra top-level keys."""
        return {
            "rows": [{"name": row.name, "ns_per_op": float(row.ns_per_op)} for row in self.rows],
            "ratios": {
                r.name: {
                    "description": r.description,
                    "subject": r.subject,
                    "baseline": r.baseline,
                    "value": r.value,
                    "op": r.op,
                    "target": r.target,
                    "pass": r.passed,
                }
                for r in self.ratios
            },
            "stats": {
                row.name: {
                    "group": row.group,
                    "min_ns": row.min_ns,
                    "median_ns": row.median_ns,
                    "max_ns": row.max_ns,
                    "loops": row.loops,
                    "rounds": row.rounds,
                }
                for row in self.rows
            },
            "machine": self.machine,
            "versions": self.versions,
            "notes": list(self.notes),
            "params": self.params,
        }
