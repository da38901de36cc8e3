"""What a bench run produces: rows, the target ratios, the machine and the versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ._cases import PEERS, Group, Kind

__all__ = [
    "BenchResult",
    "Measure",
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
    "SQLAlchemy",
    "psycopg",
    "redis",
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
class Measure:
    """A row that is not a per-op timing: one value in ``unit``, measured once.

    The revocation propagation and acknowledgement percentiles and the catch-up times
    (milliseconds) and the count of incomplete acknowledgements (``acks``) are such rows:
    the JSON keeps them in ``rows`` (value in the ``ns_per_op`` field) and says their unit
    in ``units``.
    """

    name: str
    value: float
    unit: str
    description: str
    section: str = "revocation across nodes"  # the report groups measures by section


@dataclass(frozen=True, slots=True)
class Ratio:
    """A target from the issue, and whether this run met it.

    For ``op == ">="`` the value is how many times faster ``subject`` is than ``baseline``
    (baseline time / subject time); for ``"<="`` it is subject time / baseline time.
    With no baseline (``unit`` other than ``"x"``) the value is the subject row's own
    value, in ``unit`` (e.g. a p99 in ms against a bound in ms). With an ``offset`` row
    the value is (subject time - offset time) / baseline time: what the subject adds to
    the offset, in baselines (a store miss above the key in hand, in driver floors).
    ``value`` is ``None`` when a row is missing (e.g. no peer installed, no services).
    """

    name: str
    description: str
    subject: str
    baseline: str | None
    value: float | None
    op: Literal[">=", "<="]
    target: float
    unit: str = "x"
    offset: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target


_PEER_DECODE: Final = tuple(f"{label}.decode.HS256" for label, _, _ in PEERS)
_PEER_ENCODE: Final = tuple(f"{label}.encode.HS256" for label, _, _ in PEERS)
# name, description, subject, candidate baselines (the fastest present one is used; none:
# an absolute bound on the subject's own value), op, target, unit
_TARGETS: Final[
    tuple[tuple[str, str, str, tuple[str, ...], Literal[">=", "<="], float, str], ...]
] = (
    (
        "boundary_hs256_vs_fastest_peer_decode",
        "boundary HS256 vs fastest peer decode",
        "sjti.verify_boundary.HS256",
        _PEER_DECODE,
        ">=",
        3.5,
        "x",
    ),
    (
        "full_hs256_vs_fastest_peer_decode",
        "full two-layer HS256 vs fastest peer decode",
        "sjti.verify_full.HS256",
        _PEER_DECODE,
        ">=",
        2.5,
        "x",
    ),
    (
        "issue_hs256_vs_fastest_peer_encode",
        "issue HS256 vs fastest peer encode",
        "sjti.issue.HS256",
        _PEER_ENCODE,
        ">=",
        2.0,
        "x",
    ),
    (
        "boundary_eddsa_vs_ed25519_floor",
        "boundary EdDSA vs Ed25519 verify alone",
        "sjti.verify_boundary.EdDSA",
        ("floor.ed25519_verify",),
        "<=",
        1.1,
        "x",
    ),
    (
        "full_cached_hs256_vs_key_in_hand",
        "full HS256, user key from a cache hit vs key in hand",
        "sjti.verify_full_cached.HS256",
        ("sjti.verify_full.HS256",),
        "<=",
        1.2,
        "x",
    ),
    (
        "full_cached_device_vs_key_in_hand",
        "full HS256 with the device check, cache hit vs key in hand",
        "sjti.verify_full_cached_device.HS256",
        ("sjti.verify_full_device.HS256",),
        "<=",
        1.2,
        "x",
    ),
    (
        "device_check_vs_no_devices",
        "full HS256, key in hand: with the device check vs without",
        "sjti.verify_full_device.HS256",
        ("sjti.verify_full.HS256",),
        "<=",
        1.1,
        "x",
    ),
    (
        "revoke_propagation_p99",
        "revocation reaches every other node, p99",
        "sjti.revoke_propagation_p99_ms",
        (),
        "<=",
        50.0,
        "ms",
    ),
    (
        "revoke_ack_all_p99",
        'revoke(wait="all") acknowledged by every live node, p99',
        "sjti.revoke_ack_all_p99_ms",
        (),
        "<=",
        20.0,
        "ms",
    ),
    (
        "revoke_ack_all_complete",
        'revoke(wait="all") calls that came back incomplete',
        "sjti.revoke_ack_all_incomplete",
        (),
        "<=",
        0.0,
        "acks",
    ),
    *(
        (
            f"bulk_revoke_{db}",
            f"{name}: revoke a cohort of all users in batches",
            f"sjti.bulk_revoke_users_per_s.{db}",
            (),
            ">=",
            rate,
            "users/s",
        )
        for db, name, rate in (
            ("sqlite", "SQLite", 100_000.0),
            ("postgresql", "PostgreSQL", 50_000.0),
        )
    ),
    *(
        (
            f"bulk_rss_{db}",
            f"{name}: peak RSS growth of a bulk step",
            f"sjti.bulk_rss_growth_mb.{db}",
            (),
            "<=",
            100.0,
            "MB",
        )
        for db, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
    ),
    *(
        (
            f"bulk_preview_{db}",
            f"{name}: dry run of a cohort, share of its revocation (worse of 10% and all)",
            f"sjti.bulk_preview_vs_revoke_pct.{db}",
            (),
            "<=",
            5.0,
            "%",
        )
        for db, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
    ),
    *(
        (
            f"bulk_rewrap_{db}",
            f"{name}: KEK re-wrap of every secret, same batch path",
            f"sjti.bulk_rewrap_rows_per_s.{db}",
            (),
            ">=",
            50_000.0,
            "rows/s",
        )
        for db, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
    ),
    (
        "catchup_replay_vs_clear",
        "after a bus outage, current and serving again: replay the log vs clear",
        "sjti.catchup_after_outage_ms",
        ("sjti.catchup_after_outage_clear_ms",),
        "<=",
        1.0,
        "x",
    ),
)


# name, description, subject, offset, floor, bound: subject <= offset + bound x floor
_OVER_FLOOR: Final[tuple[tuple[str, str, str, str, str, float], ...]] = (
    (
        "sqlite_miss_vs_driver_floor",
        "SQLite store miss: time above the key in hand, in raw-driver SELECTs",
        "sjti.verify_full_sqlite.HS256",
        "sjti.verify_full.HS256",
        "floor.sqlite_select_pk",
        2.0,
    ),
    (
        "postgres_miss_vs_driver_floor",
        "PostgreSQL store miss: time above the key in hand, in raw-driver SELECTs",
        "sjti.verify_full_postgres.HS256",
        "sjti.verify_full.HS256",
        "floor.pg_select_pk",
        1.3,
    ),
)


def compute_ratios(values: Mapping[str, float]) -> tuple[Ratio, ...]:
    """The issue's targets, evaluated on ``{row name: value}`` (ns/op for timed rows, the
    row's own unit for :class:`Measure` rows)."""
    ratios = []
    for name, description, subject, candidates, op, target, unit in _TARGETS:
        value: float | None = None
        baseline: str | None = None
        if not candidates:
            value = values.get(subject)
        else:
            present = [c for c in candidates if c in values]
            baseline = min(present, key=values.__getitem__) if present else None
            if baseline is not None and subject in values:
                base, mine = values[baseline], values[subject]
                value = base / mine if op == ">=" else mine / base
        ratios.append(Ratio(name, description, subject, baseline, value, op, target, unit))
    for name, description, subject, offset, floor, bound in _OVER_FLOOR:
        over: float | None = None
        if all(row in values for row in (subject, offset, floor)):
            over = (values[subject] - values[offset]) / values[floor]
        ratios.append(Ratio(name, description, subject, floor, over, "<=", bound, "x", offset))
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
    # Rows measured once, outside the interleaved loop (revocation propagation, in ms).
    measures: tuple[Measure, ...] = ()
    # How the measures were made (nodes, revocations, percentiles, outcomes), or None.
    propagation: dict[str, Any] | None = field(default=None)
    # How the acknowledged revocations went (timeout, incomplete count, ...), or None.
    acknowledgement: dict[str, Any] | None = field(default=None)
    # The catch-up after an outage (working set, events, trials, both modes), or None.
    catchup: dict[str, Any] | None = field(default=None)
    # The bulk revocation (users, batch size, every step on each database), or None.
    bulk: dict[str, Any] | None = field(default=None)
    # How the scale rows were made (sizes, every table, the Zipf runs), or None.
    scale: dict[str, Any] | None = field(default=None)

    def ns_per_op(self) -> dict[str, float]:
        """The timed rows only: ``{name: ns/op}``."""
        return {row.name: row.ns_per_op for row in self.rows}

    def values(self) -> dict[str, float]:
        """Every row's reported value: ns/op for timed rows, ``unit`` for measures."""
        return {**self.ns_per_op(), **{m.name: m.value for m in self.measures}}

    @property
    def missed(self) -> tuple[Ratio, ...]:
        """Targets this run did not meet (targets that could not be computed are not here)."""
        return tuple(r for r in self.ratios if r.passed is False)

    def to_json(self) -> dict[str, Any]:
        """``{"rows": [{"name", "ns_per_op"}], ...}``, with the rest as extra top-level keys.

        A :class:`Measure` row keeps the same shape, its value (e.g. milliseconds) in the
        ``ns_per_op`` field; ``units`` names the unit of every such row (rows it does not
        list are nanoseconds per operation).
        """
        return {
            "rows": [
                *({"name": row.name, "ns_per_op": float(row.ns_per_op)} for row in self.rows),
                *({"name": m.name, "ns_per_op": float(m.value)} for m in self.measures),
            ],
            "units": {m.name: m.unit for m in self.measures},
            "ratios": {
                r.name: {
                    "description": r.description,
                    "subject": r.subject,
                    "baseline": r.baseline,
                    "value": r.value,
                    "op": r.op,
                    "target": r.target,
                    "unit": r.unit,
                    "offset": r.offset,
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
            "propagation": self.propagation,
            "acknowledgement": self.acknowledgement,
            "catchup": self.catchup,
            "bulk": self.bulk,
            "scale": self.scale,
        }
