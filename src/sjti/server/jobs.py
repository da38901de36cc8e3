"""Cohort revocations of any size as background jobs with visible progress.

A million-user cohort is not one HTTP request: ``POST /admin/revocation-jobs`` starts a
job and answers ``202`` at once; the job revokes in batches (each batch one committed
transaction with its key rotations, the users' refresh families, its audit row, one
event, and the job row's counters) and ``GET /admin/revocation-jobs/{id}`` shows how far
it got, from any worker or node: the job lives in the database
(:mod:`sjti.server.job_rows`), not in the worker that runs it.

The worker running a job holds a lease: it refreshes ``heartbeat_at`` every
:data:`HEARTBEAT` seconds. A job whose worker died shows ``interrupted`` once the lease
(:data:`LEASE`) ran out, with the batches and users that committed (the counters are
written in each batch's transaction; the event and audit ids right after it, so they may
lag one batch, never lead). It can be resumed.

Every run selects the cohort as given (what the dry run counted), in id order (keyset
pagination): one pass visits every user once, so nobody who signed in again after their
batch is signed out again, and no clock decides who is selected. Each batch records, in
its own transaction, the keyset position the next batch starts after (``resume_after``:
the largest id of the batch in the database's order, as the plan itself uses it). A
resume starts after that position: exactly the users no committed batch reached. (A
resume used to select ``rotated_before=<the job's start>``, comparing one worker's clock
with the ``rotated_at`` of whichever node rotated each key: a node whose clock ran ahead
made it skip users never revoked, and the job said done.) A job whose row predates
``resume_after`` (schema v3) resumes from the start with the criteria it stored.

A job runs at most once per worker at a time: a resume on the worker whose thread still
runs it is refused (the lease is per worker, so two runs there would both pass it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Engine, RowMapping

from ..errors import BackendError
from ..stores._ops import Plan
from ..stores._revocation import describe_cohort
from ..stores.base import Cohort, RevocationResult
from ..stores.sql import SqlSecretStore
from . import job_rows
from .sessions import revoke_families_of

__all__ = [
    "HEARTBEAT",
    "LEASE",
    "MAX_RUNNING",
    "JobProgress",
    "NotResumableError",
    "RevocationJobs",
    "TooManyJobsError",
    "cohort_from_json",
    "cohort_to_json",
]

logger = logging.getLogger("sjti.server")

MAX_RUNNING: Final = 4  # per worker: overlapping cohorts serialise on their rows anyway
HEARTBEAT: Final = 1.0  # seconds between lease renewals (one UPDATE while jobs run)
LEASE: Final = timedelta(seconds=5)  # no heartbeat for this long: the worker is gone

State = Literal["running", "done", "failed", "interrupted"]
_DATES: Final = ("created_before", "last_login_before", "rotated_before")


class TooManyJobsError(Exception):
    """:data:`MAX_RUNNING` jobs are running on this worker already."""


class NotResumableError(Exception):
    """Only a failed or interrupted job can be resumed (not a running or a done one)."""


def cohort_to_json(cohort: Cohort) -> str:
    """The criteria a job stores for a resume (never ``user_ids``: a job selects by
    criteria)."""
    fields: dict[str, Any] = {"tenant": cohort.tenant, "role": cohort.role}
    fields.update({name: _iso(getattr(cohort, name)) for name in _DATES})
    return json.dumps(fields, sort_keys=True)


def cohort_from_json(text: str) -> Cohort:
    fields = json.loads(text)
    return Cohort(
        tenant=fields.get("tenant"),
        role=fields.get("role"),
        created_before=_date(fields.get("created_before")),
        last_login_before=_date(fields.get("last_login_before")),
        rotated_before=_date(fields.get("rotated_before")),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _date(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclasses.dataclass(frozen=True, slots=True)
class JobProgress:
    """A job as its row says, seen at some moment (``interrupted``: a running job whose
    worker's lease ran out)."""

    id: str
    state: State
    cohort: str  # the audit's description of the criteria, no secrets
    actor: str
    reason: str | None
    total: int  # the dry run's count when the job started
    batch_size: int
    pause_ms: int
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    batches: int
    revoked: int
    refresh_sessions_revoked: int
    first_event_id: int | None
    last_event_id: int | None  # a node that applied it applied every batch before
    last_audit_id: int | None
    error: str | None  # a stable code ("temporarily_unavailable"), never a message
    worker: str  # the worker that runs (or last ran) it
    resumed: int

    @classmethod
    def seen(cls, row: RowMapping, now: datetime, lease: timedelta = LEASE) -> JobProgress:
        fields = {f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in row}
        fields["cohort"], fields["worker"] = row["description"], row["owner"]
        state = row["state"]
        if state == "running" and row["heartbeat_at"] < now - lease:
            state = "interrupted"
        return cls(**{**fields, "state": state})


def _owner() -> str:
    """This worker, unique even when a restarted worker reuses a pid."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class RevocationJobs:
    """Starts, resumes and runs this worker's jobs (each on a thread); reads anyone's."""

    def __init__(
        self, engine: Engine, store: SqlSecretStore, clock: Callable[[], datetime]
    ) -> None:
        self._engine, self._store, self._clock = engine, store, clock
        self.owner = _owner()
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._ticker: threading.Thread | None = None

    def start(
        self,
        cohort: Cohort,
        *,
        actor: str,
        reason: str | None,
        batch_size: int,
        pause_ms: int = 0,
        on_batch: Callable[[RevocationResult], None] = lambda _: None,
    ) -> JobProgress:
        """Record the job and start revoking in the background; its first snapshot.
        ``on_batch`` runs after each committed batch (the service's metrics)."""
        now = self._clock()
        total = self._store.preview_batches(cohort).count  # the run selects the same
        job_id = secrets.token_urlsafe(12)
        with self._lock:
            self._reserve(job_id)
        try:
            job_rows.insert(
                self._engine,
                {
                    "id": job_id,
                    "state": "running",
                    "cohort": cohort_to_json(cohort),  # for a resume
                    "description": describe_cohort(cohort),
                    "actor": actor,
                    "reason": reason,
                    "batch_size": batch_size,
                    "pause_ms": pause_ms,
                    "total": total,
                    "started_at": now,
                    "owner": self.owner,
                    "heartbeat_at": now,
                    "batches": 0,
                    "revoked": 0,
                    "refresh_sessions_revoked": 0,
                    "resumed": 0,
                },
            )
        except BaseException:
            self._release(job_id)
            raise
        self._spawn(
            job_id,
            lambda: self._run(job_id, cohort, None, actor, reason, batch_size, pause_ms, on_batch),
        )
        return self._seen_now(job_id)

    def resume(
        self,
        job_id: str,
        *,
        actor: str,
        pause_ms: int | None = None,
        on_batch: Callable[[RevocationResult], None] = lambda _: None,
    ) -> JobProgress | None:
        """Take over a failed or interrupted job and revoke who is left (``None``: no such
        job; :class:`NotResumableError`: it is running, here or on a live worker, or
        done). The batches it commits are audited as ``actor``, who caused them; the job
        keeps the actor who started it."""
        row = job_rows.get(self._engine, job_id)
        if row is None:
            return None
        now = self._clock()
        with self._lock:
            self._reserve(job_id)
        try:
            taken = job_rows.claim(
                self._engine,
                job_id,
                self.owner,
                now=now,
                stale=now - LEASE,
                pause_ms=row["pause_ms"] if pause_ms is None else pause_ms,
            )
        except BaseException:
            self._release(job_id)
            raise
        if taken is None:
            self._release(job_id)
            raise NotResumableError()
        cohort = cohort_from_json(taken["cohort"])
        after = job_rows.position_from_json(taken["resume_after"])  # the last commit's
        reason = taken["reason"]
        size, pause = taken["batch_size"], taken["pause_ms"]
        self._spawn(
            job_id,
            lambda: self._run(job_id, cohort, after, actor, reason, size, pause, on_batch),
        )
        return self._seen_now(job_id)

    def get(self, job_id: str) -> JobProgress | None:
        row = job_rows.get(self._engine, job_id)
        return None if row is None else JobProgress.seen(row, self._clock())

    def recent(self, limit: int = 100) -> list[JobProgress]:
        """Newest first, every worker's."""
        now = self._clock()
        return [JobProgress.seen(row, now) for row in job_rows.recent(self._engine, limit)]

    # -- this worker's threads -----------------------------------------------------------

    def _seen_now(self, job_id: str) -> JobProgress:
        seen = self.get(job_id)
        assert seen is not None  # noqa: S101 - this worker just wrote it
        return seen

    def _reserve(self, job_id: str) -> None:
        """Under the lock: one more running job on this worker, or TooManyJobsError; a
        job this worker runs already: NotResumableError (so each entry has one owner,
        whose release cannot drop another run's lease or slot)."""
        if job_id in self._running:
            raise NotResumableError()
        if len(self._running) >= MAX_RUNNING:
            raise TooManyJobsError()
        self._running.add(job_id)
        if self._ticker is None or not self._ticker.is_alive():
            self._ticker = threading.Thread(target=self._beat, name="sjti-job-lease")
            self._ticker.daemon = True
            self._ticker.start()

    def _release(self, job_id: str) -> None:
        with self._lock:
            self._running.discard(job_id)

    def _beat(self) -> None:
        """Renew the lease of this worker's running jobs; ends when none is left."""
        stop = threading.Event()
        while not stop.wait(HEARTBEAT):
            with self._lock:
                mine = sorted(self._running)
                if not mine:
                    self._ticker = None
                    return
            try:
                job_rows.heartbeat(self._engine, self.owner, mine, self._clock())
            except Exception as exc:  # a blip: the next beat tries again
                logger.warning("revocation job heartbeat failed: %s", type(exc).__name__)

    def _spawn(self, job_id: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            finally:
                self._release(job_id)

        thread = threading.Thread(target=run, name=f"sjti-job-{job_id}")
        thread.daemon = True  # a stopping worker ends it: committed batches stay, resumable
        thread.start()

    def _run(
        self,
        job_id: str,
        cohort: Cohort,
        after: Any,
        actor: str,
        reason: str | None,
        batch_size: int,
        pause_ms: int,
        on_batch: Callable[[RevocationResult], None],
    ) -> None:
        counted: list[int] = []
        also = revoke_families_of(counted)

        def record(user_ids: Sequence[Any], last: Any) -> Plan[None]:
            """In the batch's transaction, after ``also``: its counts, and ``last``, where
            the next batch starts (the plan's own keyset position) for a resume."""
            yield from job_rows.batch_written(
                job_id,
                self.owner,
                users=len(user_ids),
                sessions=sum(counted),
                after=last,
                now=self._clock(),
            )
            counted.clear()  # the transaction commits next, or the job stops on its error

        error: str | None = None
        pause = threading.Event()
        try:
            batches = self._store.revoke_batches(
                cohort,
                batch_size=batch_size,
                actor=actor,
                reason=reason,
                also=also,
                record=record,
                after=after,
            )
            for result in batches:
                job_rows.ids_committed(self._engine, job_id, self.owner, result)
                on_batch(result)
                if pause_ms:
                    pause.wait(pause_ms / 1000)  # spreads a huge cohort's load
        except job_rows.JobLostError:
            logger.warning("revocation job %s was taken over by another worker", job_id)
            return  # its new owner records the rest
        except BackendError:
            error = "temporarily_unavailable"  # committed batches stay; resume finishes it
        except Exception as exc:  # a job thread must record, not vanish
            logger.warning("revocation job failed: %s", type(exc).__name__)
            error = "internal_error"
        try:
            job_rows.finish(self._engine, job_id, self.owner, self._clock(), error)
        except Exception as exc:  # the lease runs out: GET says interrupted, resumable
            logger.warning("revocation job end not recorded: %s", type(exc).__name__)
