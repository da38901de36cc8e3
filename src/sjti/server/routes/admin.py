"""Incident response: revoke users by id or by cohort (admin role), and the audit trail.

A cohort larger than one batch (:data:`~sjti.stores.MAX_LISTED_IDS` users) is revoked by
a job (``POST /admin/revocation-jobs``, see :mod:`sjti.server.jobs`), never in one
request: ``POST /admin/revocations`` refuses it with ``409 cohort_too_large``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...stores._revocation import utc_now
from ...stores.base import MAX_LISTED_IDS, Cohort
from ..auth import AdminPrincipal, ServicesDep
from ..jobs import JobProgress, NotResumableError, RevocationJobs, TooManyJobsError
from ..models import AuditOut, CohortIn, RevocationIn, RevocationOut
from ..services import Services
from ..sessions import revoke_families_of

router = APIRouter(prefix="/admin", tags=["admin"])
MAX_PAUSE_MS: Final = 60_000
_registry_lock = threading.Lock()


def _cohort(given: CohortIn) -> Cohort:
    return Cohort(
        tenant=given.tenant,
        role=given.role,
        created_before=given.created_before,
        last_login_before=given.last_login_before,
    )


@router.post("/revocations", response_model=RevocationOut)
def revoke(body: RevocationIn, admin: AdminPrincipal, services: ServicesDep) -> RevocationOut:
    """Rotate the key of every selected user (all their access tokens end at once) and
    revoke their refresh tokens, in one transaction. ``dry_run`` says who would be logged
    out, changing nothing. A cohort of more than one batch: ``409 cohort_too_large``,
    revoke it with ``POST /admin/revocation-jobs``."""
    cohort = None if body.cohort is None else _cohort(body.cohort)
    return revoke_selection(
        services,
        f"admin:{admin.user.username}",
        cohort=cohort,
        user_ids=body.user_ids,
        reason=body.reason,
        dry_run=body.dry_run,
        wait=body.wait,
    )


def cohort_size(services: Services, cohort: Cohort) -> int:
    """How many users a criteria cohort selects now (two index reads, no lock)."""
    return services.store.preview_batches(cohort).count


def revoke_selection(
    services: Services,
    actor: str,
    *,
    cohort: Cohort | None,
    user_ids: Sequence[str] | None,
    reason: str | None,
    dry_run: bool,
    wait: bool,
) -> RevocationOut:
    """Revoke a cohort, or else the listed ids (the API and the admin console): the keys,
    their refresh families, the audit row and one event in one transaction; ``wait``
    returns once every live node applied it (or the timeout named the laggards). A
    criteria cohort above one batch: ``409 cohort_too_large`` (checked here, so no caller
    commits a huge cohort in one transaction)."""
    if cohort is not None and cohort.user_ids is None and not dry_run:
        size = cohort_size(services, cohort)
        if size > MAX_LISTED_IDS:
            raise HTTPException(
                409,
                {
                    "code": "cohort_too_large",
                    "error_description": f"{size} users: more than one transaction should "
                    f"hold ({MAX_LISTED_IDS}); start a job: POST /admin/revocation-jobs",
                },
            )
    counted: list[int] = []
    options: dict[str, Any] = {
        "actor": actor,
        "reason": reason,
        "dry_run": dry_run,
        "also": revoke_families_of(counted),
        "wait": "all" if wait else None,
        "timeout": services.settings.revoke_wait_timeout,
    }
    if cohort is not None and dry_run:  # a count and the first ids, whatever the size
        result = services.store.preview_batches(cohort)
    elif cohort is not None:
        result = services.store.revoke_cohort(cohort, **options)
    else:
        result = services.store.revoke_many(sorted(set(user_ids or ())), **options)
    services.revoked(result, "admin")
    ack = result.acknowledgement
    return RevocationOut(
        count=result.count,
        user_ids=list(result.user_ids),
        truncated=result.truncated,
        dry_run=result.dry_run,
        audit_id=result.audit_id,
        refresh_sessions_revoked=sum(counted),
        event_id=result.event_id,
        acknowledged_by=None if ack is None else list(ack.acknowledged),
        pending_nodes=None if ack is None else list(ack.pending),
    )


@router.get("/revocations", response_model=list[AuditOut])
def audit_trail(
    _admin: AdminPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The revocation audit trail, newest first (logouts, reuse detections, admin actions)."""
    return [
        AuditOut(
            id=r.id,
            at=r.at,
            actor=r.actor,
            reason=r.reason,
            kind=r.kind,
            count=r.count,
            detail=r.detail,
        )
        for r in services.store.audit_log(limit=limit)
    ]


# -- cohort revocation jobs ----------------------------------------------------------


class JobIn(BaseModel):
    """``POST /admin/revocation-jobs``: revoke a cohort of any size in batches."""

    model_config = ConfigDict(extra="forbid")

    cohort: CohortIn
    reason: Annotated[str, Field(max_length=200)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=MAX_LISTED_IDS)] = MAX_LISTED_IDS
    pause_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] = Field(
        default=0, description="wait between batches, to spread the database's and bus's load"
    )


class ResumeIn(BaseModel):
    """``POST /admin/revocation-jobs/{id}/resume``: the pause may change; nothing else."""

    model_config = ConfigDict(extra="forbid")

    pause_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] | None = None


class JobOut(BaseModel):
    """A job's progress, from the database (any worker answers): ``total`` is the dry
    run's count at the start; each committed batch adds to ``batches`` and ``revoked`` in
    its own transaction and writes one audit row and one event (``last_event_id``: a node
    that applied it applied every batch before; it may lag one batch behind ``batches``
    if the worker died between the commit and recording it). ``interrupted``: the worker
    running it stopped renewing its lease; ``POST .../resume`` finishes it."""

    id: str
    state: str  # running, done, failed, interrupted
    cohort: str
    actor: str
    reason: str | None
    total: int
    batch_size: int
    pause_ms: int
    batches: int
    revoked: int
    refresh_sessions_revoked: int
    first_event_id: int | None
    last_event_id: int | None
    last_audit_id: int | None
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    error: str | None
    worker: str
    resumed: int


def _out(progress: JobProgress) -> JobOut:
    return JobOut.model_validate(dataclasses.asdict(progress))


def revocation_jobs(request: Request, services: Services) -> RevocationJobs:
    """This worker's job runner (it reads every worker's jobs), made on first use."""
    with _registry_lock:
        jobs: RevocationJobs | None = getattr(request.app.state, "revocation_jobs", None)
        if jobs is None:
            jobs = RevocationJobs(services.engine, services.store, utc_now)
            request.app.state.revocation_jobs = jobs
        return jobs


def _answered_by(response: Response, jobs: RevocationJobs) -> None:
    """Which worker answered (operators and tests tell workers apart)."""
    response.headers["Sjti-Worker"] = jobs.owner


def start_revocation_job(
    request: Request,
    services: Services,
    cohort: Cohort,
    *,
    actor: str,
    reason: str | None,
    batch_size: int = MAX_LISTED_IDS,
    pause_ms: int = 0,
) -> JobProgress:
    """Start a batched cohort revocation (the API and the admin console); 409 when this
    worker runs :data:`~sjti.server.jobs.MAX_RUNNING` jobs already."""
    try:
        return revocation_jobs(request, services).start(
            cohort,
            actor=actor,
            reason=reason,
            batch_size=batch_size,
            pause_ms=pause_ms,
            on_batch=lambda result: services.revoked(result, "admin"),
        )
    except TooManyJobsError:
        raise HTTPException(
            409, {"code": "conflict", "error_description": "too many jobs running"}
        ) from None


def _not_found() -> HTTPException:
    return HTTPException(404, {"code": "not_found", "error_description": "no such job"})


@router.post("/revocation-jobs", response_model=JobOut, status_code=202)
def start_job(
    body: JobIn,
    admin: AdminPrincipal,
    services: ServicesDep,
    request: Request,
    response: Response,
) -> JobOut:
    """Start revoking a cohort in batches (each one transaction: keys, refresh families,
    audit row, one event, the job's counters); answers at once with the job
    (``Location``: its progress, readable from any worker)."""
    job = start_revocation_job(
        request,
        services,
        _cohort(body.cohort),
        actor=f"admin:{admin.user.username}",
        reason=body.reason,
        batch_size=body.batch_size,
        pause_ms=body.pause_ms,
    )
    response.headers["Location"] = f"/admin/revocation-jobs/{job.id}"
    _answered_by(response, revocation_jobs(request, services))
    return _out(job)


@router.post("/revocation-jobs/{job_id}/resume", response_model=JobOut, status_code=202)
def resume_job(
    job_id: Annotated[str, Path(max_length=32)],
    admin: AdminPrincipal,
    services: ServicesDep,
    request: Request,
    response: Response,
    body: ResumeIn | None = None,
) -> JobOut:
    """Finish a failed or interrupted job on this worker: the users its batches did not
    reach (its cohort selects keys made before it started, so nobody is revoked twice),
    each batch audited as the admin who resumed it;
    409 ``conflict`` while it runs or once it is done."""
    jobs = revocation_jobs(request, services)
    try:
        job = jobs.resume(
            job_id,
            actor=f"admin:{admin.user.username}",
            pause_ms=None if body is None else body.pause_ms,
            on_batch=lambda result: services.revoked(result, "admin"),
        )
    except (NotResumableError, TooManyJobsError):
        raise HTTPException(
            409,
            {"code": "conflict", "error_description": "only a failed or interrupted job "
             "resumes, on a worker running fewer jobs than its bound"},
        ) from None  # fmt: skip
    if job is None:
        raise _not_found()
    response.headers["Location"] = f"/admin/revocation-jobs/{job.id}"
    _answered_by(response, jobs)
    return _out(job)


@router.get("/revocation-jobs", response_model=list[JobOut])
def list_jobs(
    _admin: AdminPrincipal, services: ServicesDep, request: Request, response: Response
) -> list[JobOut]:
    """Every worker's jobs, newest first (the latest 100)."""
    jobs = revocation_jobs(request, services)
    _answered_by(response, jobs)
    return [_out(job) for job in jobs.recent()]


@router.get("/revocation-jobs/{job_id}", response_model=JobOut)
def job_progress(
    job_id: Annotated[str, Path(max_length=32)],
    _admin: AdminPrincipal,
    services: ServicesDep,
    request: Request,
    response: Response,
) -> JobOut:
    """One job's progress, whichever worker runs it (404: no such job)."""
    jobs = revocation_jobs(request, services)
    _answered_by(response, jobs)
    job = jobs.get(job_id)
    if job is None:
        raise _not_found()
    return _out(job)
