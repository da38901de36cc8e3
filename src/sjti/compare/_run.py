"""Run every scenario for every contender on scratch SQLite files; collect the cells."""

from __future__ import annotations

import platform
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from . import _db
from ._cells import SCENARIOS, Cell
from ._contender import Contender
from ._jwt_contenders import DenylistContender, EpochContender, PlainContender, SjtiContender
from ._measure import peer_cells
from ._scenarios import (
    LEAKS,
    Size,
    capability_cells,
    leak_cell,
    population_cells,
    runtime_cells,
)
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
QUICK: Final = Size(users=200, tokens=3, loops=200)
FULL: Final = Size(users=10_000, tokens=10, loops=2_000)


@dataclass(frozen=True, slots=True)
class Comparison:
    cells: tuple[Cell, ...]
    size: Size
    machine: dict[str, str]
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {"cells": [cell.to_json() for cell in self.cells]}


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": platform.processor() or platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _one(
    name: str, factory: ContenderFactory, app: AppSecrets, size: Size, scratch: Path
) -> tuple[list[Cell], str]:
    """Every scenario for one contender: a small database, then a population database."""
    path = scratch / f"{name}.db"
    contender = factory(_db.sqlite_engine(path), app)
    population = factory(_db.sqlite_engine(scratch / f"{name}-population.db"), app)
    try:
        contender.prepare()
        cells = capability_cells(contender, scratch)
        cells += [leak_cell(contender, app, leak, scratch, path) for leak in LEAKS]
        runtime, token = runtime_cells(contender, size)
        population.prepare()
        cells += runtime + population_cells(population, size)
    finally:
        contender.engine.dispose()
        population.engine.dispose()
    return cells, token


def run(
    size: Size,
    *,
    contenders: Mapping[str, ContenderFactory] = CONTENDERS,
    peers: bool = True,
    scratch: Path | None = None,
) -> Comparison:
    """All cells, ordered by strategy then scenario. ``scratch`` keeps the databases."""
    start = time.perf_counter()
    app = AppSecrets()
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="sjti-compare-") as tmp:
        where = scratch or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        sjti_token = None
        for name, factory in contenders.items():
            found, token = _one(name, factory, app, size, where)
            cells += found
            sjti_token = token if name == "sjti" else sjti_token
        if peers and sjti_token is not None:
            cells += peer_cells(sjti_token, app.signing_secret, size.loops)
    order = list(SCENARIOS)
    cells.sort(key=lambda cell: order.index(cell.scenario))
    return Comparison(tuple(cells), size, machine(), round(time.perf_counter() - start, 1))
