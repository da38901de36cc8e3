"""The operations a plan yields and the job that runs it (see :mod:`sjti.stores._plans`)."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Executable

__all__ = ["Count", "Execute", "Fetch", "Job", "Op", "Plan", "Rows"]

T = TypeVar("T")
Rows = Sequence[Any]  # RowMappings (Fetch), or [{"n": count}] (Count)


@dataclass(frozen=True, slots=True)
class Fetch:
    """Run a statement and send back its rows."""

    statement: Executable


@dataclass(frozen=True, slots=True)
class Execute:
    """Run a statement (``params``: executemany) and send back no rows."""

    statement: Executable
    params: Sequence[dict[str, object]] | None = None


@dataclass(frozen=True, slots=True)
class Count:
    """Run a statement and send back how many rows it changed, as ``[{"n": count}]``."""

    statement: Executable


Op = Fetch | Execute | Count
Plan = Generator[Op, Rows, T]


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """A plan plus its transaction: ``write`` jobs commit, others roll back.

    ``begin`` is the statement that must open a write transaction (SQLite's
    ``BEGIN IMMEDIATE``), or ``None`` for the driver's default.
    """

    plan: Plan[T]
    write: bool
    begin: str | None = None
