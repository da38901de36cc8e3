"""Incident response: revoke users by id or by cohort (admin role), and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...stores.base import Cohort
from ..auth import AdminPrincipal, ServicesDep
from ..models import AuditOut, RevocationIn, RevocationOut
from ..services import Services
from ..sessions import revoke_families_of

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/revocations", response_model=RevocationOut)
def revoke(body: RevocationIn, admin: AdminPrincipal, services: ServicesDep) -> RevocationOut:
    """Rotate the key of every selected user (all their access tokens end at once) and
    revoke their refresh tokens. ``dry_run`` says who would be logged out, changing nothing."""
    cohort = None
    if body.cohort is not None:
        cohort = Cohort(
            tenant=body.cohort.tenant,
            role=body.cohort.role,
            created_before=body.cohort.created_before,
            last_login_before=body.cohort.last_login_before,
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
    if cohort is not None:
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
