"""The cohort revocation jobs' table (``sjti_revocation_jobs``): the I/O edge of
:mod:`sjti.server.jobs`.

Every write names the job *and its owner* (the worker running it): a worker that lost the
job (its lease expired and another worker resumed it) changes nothing, and its next batch
rolls back (:class:`JobLostError`), so two workers never commit batches for one job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, func, or_, select, update

from ..stores._ops import Count, Plan
from ..stores.base import RevocationResult
from .db import revocation_jobs as t

__all__ = [
    "JobLostError",
    "batch_written",
    "claim",
    "finish",
    "get",
    "heartbeat",
    "ids_committed",
    "insert",
    "position_from_json",
    "position_to_json",
    "recent",
]


class JobLostError(Exception):
    """This worker no longer owns the job (it was resumed elsewhere): stop, write nothing."""


def insert(engine: Engine, values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(t.insert().values(**values))


def _mine(job_id: str, owner: str) -> Any:
    return (t.c.id == job_id) & (t.c.owner == owner) & (t.c.state == "running")


def batch_written(
    job_id: str, owner: str, *, users: int, sessions: int, after: Any, now: datetime
) -> Plan[None]:
    """Inside the batch's transaction: count it and record ``after``, the keyset position
    the next batch starts after. Not the owner any more: roll it back."""
    rows = yield Count(
        update(t)
        .where(_mine(job_id, owner))
        .values(
            batches=t.c.batches + 1,
            revoked=t.c.revoked + users,
            refresh_sessions_revoked=t.c.refresh_sessions_revoked + sessions,
            resume_after=position_to_json(after),
            heartbeat_at=now,
        )
    )
    if int(rows[0]["n"]) != 1:
        raise JobLostError()


def position_to_json(after: Any) -> str:
    """An id as its JSON (``42`` and ``"42"`` stay apart). Only ints and texts: any other
    type raises, rolling the batch back, rather than store a position that reads back
    different (a resume would then skip or repeat users)."""
    if isinstance(after, bool) or not isinstance(after, int | str):
        raise TypeError(f"a keyset position must be an int or a str, not {type(after).__name__}")
    return json.dumps(after)


def position_from_json(text: str | None) -> Any:
    """``None``: no batch committed (or a job from before v4): start from the beginning."""
    return None if text is None else json.loads(text)


def ids_committed(engine: Engine, job_id: str, owner: str, result: RevocationResult) -> None:
    """Right after a batch commits: its event and audit ids (a crash before this leaves
    them one batch behind the counters, never ahead)."""
    values: dict[str, Any] = {"last_audit_id": result.audit_id}
    if result.event_id is not None:
        values["last_event_id"] = result.event_id
        values["first_event_id"] = func.coalesce(t.c.first_event_id, result.event_id)
    with engine.begin() as conn:
        conn.execute(update(t).where(_mine(job_id, owner)).values(**values))


def heartbeat(engine: Engine, owner: str, job_ids: Sequence[str], now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.id.in_(list(job_ids)), t.c.owner == owner, t.c.state == "running")
            .values(heartbeat_at=now)
        )


def finish(engine: Engine, job_id: str, owner: str, now: datetime, error: str | None) -> None:
    state = "done" if error is None else "failed"
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(_mine(job_id, owner))
            .values(state=state, finished_at=now, error=error, heartbeat_at=now)
        )


def claim(
    engine: Engine, job_id: str, owner: str, *, now: datetime, stale: datetime, pause_ms: int
) -> RowMapping | None:
    """Take over a failed job, or a running one whose owner's heartbeat is older than
    ``stale`` (compare-and-swap: of two workers resuming at once, one wins)."""
    resumable = or_(t.c.state == "failed", (t.c.state == "running") & (t.c.heartbeat_at < stale))
    with engine.begin() as conn:
        taken = conn.execute(
            update(t)
            .where(t.c.id == job_id, resumable)
            .values(
                state="running",
                owner=owner,
                heartbeat_at=now,
                finished_at=None,
                error=None,
                pause_ms=pause_ms,
                resumed=t.c.resumed + 1,
            )
        ).rowcount
        if taken != 1:
            return None
        return conn.execute(select(t).where(t.c.id == job_id)).mappings().one()


def get(engine: Engine, job_id: str) -> RowMapping | None:
    with engine.connect() as conn:
        return conn.execute(select(t).where(t.c.id == job_id)).mappings().one_or_none()


def recent(engine: Engine, limit: int) -> list[RowMapping]:
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.started_at.desc()).limit(limit))
        return list(rows.mappings())
