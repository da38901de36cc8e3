"""Incident response: revoke users by id or by cohort (admin role), and the audit trail.

A cohort larger than one batch (:data:`~sjti.stores.MAX_LISTED_IDS` users) is revoked by
a job (``POST /admin/revocation-jobs``, see :mod:`sjti.server.jobs`), never in one
request: ``POST /admin/revocations`` refuses it with ``409 cohort_too_large``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...stores._revocation import describe_cohort, utc_now
from ...stores.base import MAX_LISTED_IDS, Cohort, RevocationResult
from ..auth import AdminPrincipal, ServicesDep
from ..jobs import JobProgress, RevocationJobs, TooManyJobsError
from ..models import AuditOut, CohortIn, RevocationIn, RevocationOut
from ..services import Services
from ..sessions import revoke_families_of

router = APIRouter(prefix="/admin", tags=["admin"])
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
    if cohort is not None and not body.dry_run:
        size = services.store.preview_batches(cohort).count
        if size > MAX_LISTED_IDS:
            raise HTTPException(
                409,
                {
                    "code": "cohort_too_large",
                    "error_description": f"{size} users: more than one transaction should "
                    f"hold ({MAX_LISTED_IDS}); start a job: POST /admin/revocation-jobs",
                },
            )
    return revoke_selection(
        services,
        f"admin:{admin.user.username}",
        cohort=cohort,
        user_ids=body.user_ids,
        reason=body.reason,
        dry_run=body.dry_run,
        wait=body.wait,
    )


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
    returns once every live node applied it (or the timeout named the laggards)."""
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


class JobOut(BaseModel):
    """A job's progress: ``total`` is the dry run's count at the start; each committed
    batch adds to ``batches`` and ``revoked`` and writes one audit row and one event
    (``last_event_id``: a node that applied it applied every batch before)."""

    id: str
    state: str  # running, done, failed
    cohort: str
    actor: str
    reason: str | None
    total: int
    batches: int
    revoked: int
    refresh_sessions_revoked: int
    first_event_id: int | None
    last_event_id: int | None
    last_audit_id: int | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None


def _out(progress: JobProgress) -> JobOut:
    return JobOut.model_validate(dataclasses.asdict(progress))


def _jobs(request: Request) -> RevocationJobs:
    """This process's job registry, made on first use."""
    with _registry_lock:
        jobs: RevocationJobs | None = getattr(request.app.state, "revocation_jobs", None)
        if jobs is None:
            jobs = RevocationJobs(utc_now)
            request.app.state.revocation_jobs = jobs
        return jobs


@router.post("/revocation-jobs", response_model=JobOut, status_code=202)
def start_job(
    body: JobIn,
    admin: AdminPrincipal,
    services: ServicesDep,
    request: Request,
    response: Response,
) -> JobOut:
    """Start revoking a cohort in batches (each one transaction: keys, refresh families,
    audit row, one event); answers at once with the job (``Location``: its progress)."""
    cohort, store = _cohort(body.cohort), services.store
    actor = f"admin:{admin.user.username}"
    total = store.preview_batches(cohort).count

    def revoker(counted: list[int]) -> Iterator[RevocationResult]:
        also = revoke_families_of(counted)
        return store.revoke_batches(
            cohort, batch_size=body.batch_size, actor=actor, reason=body.reason, also=also
        )

    try:
        job = _jobs(request).start(
            revoker,
            description=describe_cohort(cohort),
            total=total,
            actor=actor,
            reason=body.reason,
            on_batch=lambda result: services.revoked(result, "admin"),
        )
    except TooManyJobsError:
        raise HTTPException(
            409, {"code": "conflict", "error_description": "too many jobs running"}
        ) from None
    response.headers["Location"] = f"/admin/revocation-jobs/{job.id}"
    return _out(job)


@router.get("/revocation-jobs", response_model=list[JobOut])
def list_jobs(_admin: AdminPrincipal, request: Request) -> list[JobOut]:
    """This node's jobs, newest first."""
    return [_out(job) for job in _jobs(request).all()]


@router.get("/revocation-jobs/{job_id}", response_model=JobOut)
def job_progress(job_id: str, _admin: AdminPrincipal, request: Request) -> JobOut:
    """One job's progress (404: not a job of this node)."""
    job = _jobs(request).get(job_id)
    if job is None:
        raise HTTPException(404, {"code": "not_found", "error_description": "no such job"})
    return _out(job)
