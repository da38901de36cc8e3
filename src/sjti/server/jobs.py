"""Cohort revocations of any size as background jobs with visible progress.

A million-user cohort is not one HTTP request: ``POST /admin/revocation-jobs`` starts a
job and answers ``202`` at once; the job revokes in batches (each batch one committed
transaction with its key rotations, the users' refresh families, its audit row and one
event, announced to the bus as it commits) and ``GET /admin/revocation-jobs/{id}`` shows
how far it got. The progress arithmetic is pure (:meth:`JobProgress.after`); the thread
that drives the store is the edge.

Jobs live in the process that started them (a bounded registry, newest kept): with
several workers, poll the worker that answered the ``POST`` (its ``Location``), or read
the audit trail, which records every committed batch whichever worker ran it.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Final, Literal

from ..errors import BackendError
from ..stores.base import RevocationResult

__all__ = ["MAX_JOBS", "MAX_RUNNING", "JobProgress", "RevocationJobs", "TooManyJobsError"]

logger = logging.getLogger("sjti.server")

MAX_JOBS: Final = 100  # finished jobs kept for GET, oldest forgotten first
MAX_RUNNING: Final = 4  # overlapping cohorts serialise on their rows anyway

State = Literal["running", "done", "failed"]


class TooManyJobsError(Exception):
    """:data:`MAX_RUNNING` jobs are running on this node already."""


@dataclasses.dataclass(frozen=True, slots=True)
class JobProgress:
    """What a job has done so far (immutable: each batch makes the next snapshot)."""

    id: str
    cohort: str  # the audit's description of the criteria, no secrets
    actor: str
    reason: str | None
    total: int  # the dry run's count when the job started
    started_at: datetime
    state: State = "running"
    batches: int = 0
    revoked: int = 0
    refresh_sessions_revoked: int = 0
    first_event_id: int | None = None
    last_event_id: int | None = None  # a node that applied it applied every batch
    last_audit_id: int | None = None
    finished_at: datetime | None = None
    error: str | None = None  # a stable code ("temporarily_unavailable"), never a message

    def after(self, result: RevocationResult, sessions: int) -> JobProgress:
        """The progress once one more batch committed."""
        event = result.event_id
        return dataclasses.replace(
            self,
            batches=self.batches + 1,
            revoked=self.revoked + result.count,
            refresh_sessions_revoked=self.refresh_sessions_revoked + sessions,
            first_event_id=self.first_event_id if self.first_event_id is not None else event,
            last_event_id=event if event is not None else self.last_event_id,
            last_audit_id=result.audit_id,
        )

    def finished(self, now: datetime, error: str | None = None) -> JobProgress:
        state: State = "done" if error is None else "failed"
        return dataclasses.replace(self, state=state, finished_at=now, error=error)


# What a job runs: the store's batched revocation of the cohort, given a list to which
# each batch's ``also`` appends how many refresh sessions it ended.
Revoker = Callable[[list[int]], Iterator[RevocationResult]]


class RevocationJobs:
    """This process's cohort revocation jobs, each on its own thread."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobProgress] = OrderedDict()

    def start(
        self,
        revoker: Revoker,
        *,
        description: str,
        total: int,
        actor: str,
        reason: str | None,
        on_batch: Callable[[RevocationResult], None] = lambda _: None,
    ) -> JobProgress:
        """Start revoking in the background; the first snapshot. ``on_batch`` runs after
        each committed batch (the service's metrics)."""
        job_id = secrets.token_urlsafe(12)
        first = JobProgress(job_id, description, actor, reason, total, self._clock())
        with self._lock:
            if sum(j.state == "running" for j in self._jobs.values()) >= MAX_RUNNING:
                raise TooManyJobsError()
            self._jobs[job_id] = first
            while len(self._jobs) > MAX_JOBS:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].state == "running":
                    break
                del self._jobs[oldest]
        thread = threading.Thread(
            target=self._run, args=(job_id, revoker, on_batch), name=f"sjti-job-{job_id}"
        )
        thread.daemon = True  # a stopping server ends it: committed batches stay
        thread.start()
        return first

    def get(self, job_id: str) -> JobProgress | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[JobProgress]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def _run(
        self,
        job_id: str,
        revoker: Revoker,
        on_batch: Callable[[RevocationResult], None],
    ) -> None:
        error: str | None = None
        try:
            counted: list[int] = []
            for result in revoker(counted):
                sessions = sum(counted)
                counted.clear()
                with self._lock:
                    self._jobs[job_id] = self._jobs[job_id].after(result, sessions)
                on_batch(result)
        except BackendError:
            error = "temporarily_unavailable"  # committed batches stay; a rerun is safe
        except Exception as exc:  # a job thread must record, not vanish
            logger.warning("revocation job failed: %s", type(exc).__name__)
            error = "internal_error"
        with self._lock:
            self._jobs[job_id] = self._jobs[job_id].finished(self._clock(), error)
