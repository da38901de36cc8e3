"""Run every scenario for every contender on scratch SQLite files, scratch PostgreSQL
databases and (for the deny-list) Redis; collect the cells."""

from __future__ import annotations

import contextlib
import functools
import platform
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from . import _db
from ._cells import BROKEN, PEER_BACKEND, SCENARIOS, Cell
from ._contender import Contender
from ._jwt_contenders import DenylistContender, EpochContender, PlainContender, SjtiContender
from ._measure import peer_cells
from ._redis_contender import CountingRedis, RedisDenylistContender
from ._scenarios import (
    LEAKS,
    Size,
    capability_cells,
    latency_cell,
    latency_verdict,
    leak_cell,
    population_cells,
    runtime_cells,
)
from ._services import postgres_databases, redis_client
from ._session_contender import SessionContender
from ._world import AppSecrets

__all__ = ["CONTENDERS", "FULL", "QUICK", "Comparison", "ContenderFactory", "machine", "run"]

ContenderFactory = Callable[[Engine, AppSecrets], Contender]

CONTENDERS: Final[Mapping[str, ContenderFactory]] = {
    "sjti": SjtiContender,
    "epoch": EpochContender,
    "denylist": DenylistContender,
    "session": SessionContender,
    "plain": PlainContender,
}
QUICK: Final = Size(users=200, tokens=3, loops=200, revocations=10)
FULL: Final = Size(users=10_000, tokens=10, loops=2_000, revocations=50)
CLUSTER_NODES: Final = 3


@dataclass(frozen=True, slots=True)
class Comparison:
    cells: tuple[Cell, ...]
    size: Size
    machine: dict[str, str]
    seconds: float
    backends: tuple[str, ...] = field(default=("sqlite",))

    def to_json(self) -> dict[str, object]:
        return {"cells": [cell.to_json() for cell in self.cells]}


def machine(services: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the numbers were measured on (and the service versions, when used)."""
    return {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": platform.processor() or platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        **(services or {}),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _one(
    name: str,
    factory: ContenderFactory,
    app: AppSecrets,
    size: Size,
    scratch: Path,
    engines: Callable[[str], Engine],
    latency: Callable[[Contender], Cell] | None = None,
) -> tuple[list[Cell], str]:
    """Every scenario for one contender: a small database, then a population database.
    ``latency`` replaces the two-engine latency measurement (sjti's node cluster)."""
    contender = factory(engines(name), app)
    population = factory(engines(f"{name}-population"), app)
    try:
        contender.prepare()
        cells = capability_cells(contender, scratch)
        cells += [leak_cell(contender, app, leak, scratch) for leak in LEAKS]
        runtime, token = runtime_cells(contender, size)
        runtime.append(latency(contender) if latency else latency_cell(contender, size))
        population.prepare()
        cells += runtime + population_cells(population, size)
    finally:
        contender.engine.dispose()
        population.engine.dispose()
    return cells, token


def _cluster_latency(engine: Engine, redis_url: str, revocations: int, c: Contender) -> Cell:
    """sjti as deployed: node processes with key caches on PostgreSQL, invalidated over the
    Redis bus (:mod:`sjti.bench.multinode`); revoke on one, time until the others refuse."""
    from ..bench.multinode import cluster, measure_propagation

    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    with cluster(url, redis_url, nodes=CLUSTER_NODES) as nodes:
        result = measure_propagation(nodes, revocations=revocations)
    if result.accepted_after_window:
        verdict = f"{BROKEN}: {result.accepted_after_window} tokens accepted again"
        return Cell(c.name, "revocation_latency", verdict, None, c.backend)
    if any(ms >= 5_000 for ms in result.latencies_ms):
        verdict = f"{BROKEN}: a node still accepts 5 s later"
        return Cell(c.name, "revocation_latency", verdict, None, c.backend)
    note = f"{CLUSTER_NODES} nodes, cache + Redis bus"
    verdict, p99 = latency_verdict(result.latencies_ms, note)
    return Cell(c.name, "revocation_latency", verdict, p99, c.backend)


def _prefixed(engines: Callable[[str], Engine], backend: str, name: str) -> Engine:
    return engines(f"{backend}-{name}")


def _redis_factory(client: CountingRedis, prefix: str) -> ContenderFactory:
    """The Redis deny-list; each contender built gets its own key prefix."""
    made = iter(range(1_000_000))

    def factory(engine: Engine, app: AppSecrets) -> Contender:
        return RedisDenylistContender(engine, app, client=client, prefix=f"{prefix}{next(made)}:")

    return factory


def run(
    size: Size,
    *,
    contenders: Mapping[str, ContenderFactory] = CONTENDERS,
    peers: bool = True,
    scratch: Path | None = None,
    sqlite: bool = True,
    postgres_url: str | None = None,
    redis_url: str | None = None,
) -> Comparison:
    """All cells, ordered by scenario, then backend and strategy as run.

    ``sqlite``: every contender on SQLite files. ``postgres_url``: every contender again,
    each on scratch PostgreSQL databases of that server. ``redis_url``: the deny-list with
    its state in Redis (when ``contenders`` has ``denylist``; the app's users table on
    PostgreSQL if given, else SQLite). ``scratch`` keeps the SQLite files.
    """
    start = time.perf_counter()
    app = AppSecrets()
    cells: list[Cell] = []
    services: dict[str, str] = {}
    backends: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="sjti-compare-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        where = scratch or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)

        def sqlite_files(name: str) -> Engine:
            return _db.sqlite_engine(where / f"{name}.db")

        plan: list[tuple[str, Mapping[str, ContenderFactory], Callable[[str], Engine]]] = []
        if sqlite:
            plan.append(("sqlite", contenders, sqlite_files))
        app_engines: Callable[[str], Engine] = sqlite_files
        if postgres_url is not None:
            app_engines = postgres_databases(stack, postgres_url, services)
            plan.append(("pg", contenders, app_engines))
        if redis_url is not None and "denylist" in contenders:
            client, prefix = redis_client(stack, redis_url, services)
            plan.append(("redis", {"denylist": _redis_factory(client, prefix)}, app_engines))
        sjti_token = None
        for backend, group, engines in plan:
            backends.append(backend)
            for name, factory in group.items():
                named = functools.partial(_prefixed, engines, backend)
                latency = None
                if backend == "pg" and name == "sjti" and redis_url is not None:
                    latency = functools.partial(
                        _cluster_latency, named("sjti-nodes"), redis_url, size.revocations
                    )
                found, token = _one(name, factory, app, size, where, named, latency)
                cells += found
                sjti_token = token if name == "sjti" and sjti_token is None else sjti_token
        if peers and sjti_token is not None:
            cells += [
                Cell(c.strategy, c.scenario, c.verdict, c.value, PEER_BACKEND)
                for c in peer_cells(sjti_token, app.signing_secret, size.loops)
            ]
    order = list(SCENARIOS)
    cells.sort(key=lambda cell: order.index(cell.scenario))
    seconds = round(time.perf_counter() - start, 1)
    return Comparison(tuple(cells), size, machine(services), seconds, tuple(backends))
