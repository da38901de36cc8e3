"""Incident response: revoke users by id or by cohort (admin role), and the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement

from ...stores.base import Cohort
from ..auth import AdminPrincipal, ServicesDep
from ..db import users
from ..models import AuditOut, CohortIn, RevocationIn, RevocationOut

router = APIRouter(prefix="/admin", tags=["admin"])


def _user_filter(cohort: CohortIn) -> list[ColumnElement[bool]]:
    """The same selection as the store's cohort, on the users table (for refresh families)."""
    filters: list[ColumnElement[bool]] = []
    if cohort.tenant is not None:
        filters.append(users.c.tenant == cohort.tenant)
    if cohort.role is not None:
        filters.append(users.c.role == cohort.role)
    if cohort.created_before is not None:
        filters.append(users.c.created_at < cohort.created_before)
    if cohort.last_login_before is not None:
        filters.append(users.c.last_login_at < cohort.last_login_before)
    return filters


@router.post("/revocations", response_model=RevocationOut)
def revoke(body: RevocationIn, admin: AdminPrincipal, services: ServicesDep) -> RevocationOut:
    """Rotate the key of every selected user (all their access tokens end at once) and
    revoke their refresh tokens. ``dry_run`` says who would be logged out, changing nothing."""
    actor = f"admin:{admin.user.username}"
    if body.cohort is not None:
        cohort = Cohort(
            tenant=body.cohort.tenant,
            role=body.cohort.role,
            created_before=body.cohort.created_before,
            last_login_before=body.cohort.last_login_before,
        )
        result = services.store.revoke_cohort(
            cohort, actor=actor, reason=body.reason, dry_run=body.dry_run
        )
        sessions = 0 if body.dry_run else services.refresh.revoke_where(_user_filter(body.cohort))
    else:
        ids = sorted(set(body.user_ids or ()))
        result = services.store.revoke_many(
            ids, actor=actor, reason=body.reason, dry_run=body.dry_run
        )
        sessions = 0 if body.dry_run else services.refresh.revoke_users(ids)
    services.revoked(result, "admin")
    return RevocationOut(
        count=result.count,
        user_ids=list(result.user_ids),
        truncated=result.truncated,
        dry_run=result.dry_run,
        audit_id=result.audit_id,
        refresh_sessions_revoked=sessions,
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
