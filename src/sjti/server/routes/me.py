"""The caller's account: profile, logout everywhere, devices."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from ..auth import CurrentPrincipal, ServicesDep
from ..models import DeviceLogoutOut, SessionOut, UserOut
from ..sessions import revoke_families_of
from .auth import user_out

router = APIRouter(tags=["me"])


@router.get("/me", response_model=UserOut)
def me(principal: CurrentPrincipal) -> UserOut:
    """The caller, once both layers accepted the bearer token."""
    return user_out(principal.user)


@router.post("/logout", status_code=204, response_class=Response)
def logout(principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Log out every device: rotate the user key (all access tokens end now) and revoke
    every refresh-token family."""
    user_id = principal.user.id
    # One transaction: the key rotation, every refresh family, the audit row, the event.
    # Publishing to the bus happens after the commit and never fails the logout.
    result = services.store.revoke(
        user_id, actor=user_id, reason="logout (all devices)", also=revoke_families_of([])
    )
    services.revoked(result, "logout")
    return Response(status_code=204)


@router.get("/sessions", response_model=list[SessionOut])
def sessions(principal: CurrentPrincipal, services: ServicesDep) -> list[SessionOut]:
    """The caller's devices (live refresh-token families)."""
    return [
        SessionOut(
            id=f.id,
            created_at=f.created_at,
            last_used_at=f.last_used_at,
            user_agent=f.user_agent,
            ip=f.ip,
            current=f.id == principal.session_id,
        )
        for f in services.refresh.list_for(principal.user.id)
    ]


@router.delete("/sessions/{session_id}", response_model=DeviceLogoutOut, responses={404: {}})
def device_logout(
    session_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> DeviceLogoutOut:
    """Log out one device: its refresh tokens stop working at once.

    Its access tokens: with ``SJTI_SESSION_GRANULARITY=session`` they are refused at once;
    with the default ``user`` granularity they stay valid until they expire (at most
    ``SJTI_ACCESS_TTL`` seconds); ``POST /logout`` ends them at once, on every device.
    """
    if len(session_id) > 64 or not services.refresh.revoke_family(principal.user.id, session_id):
        raise HTTPException(404, {"error": "not_found", "error_description": "no such session"})
    services.metrics.revocations.labels("device").inc()
    if services.settings.session_granularity == "session":
        note = "refused from now on (per-session granularity)"
    else:
        note = (
            f"still valid until they expire (at most {services.settings.access_ttl} s): "
            "granularity is per user; POST /logout ends them at once on every device"
        )
    return DeviceLogoutOut(id=session_id, revoked=True, access_tokens=note)
