"""The caller's account: profile, logout everywhere, devices."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from ...stores.base import RevocationResult
from ..auth import CurrentPrincipal, ServicesDep
from ..models import DeviceLogoutOut, SessionOut, UserOut
from ..services import Services
from ..sessions import revoke_families_of, revoke_family_too
from .auth import user_out

router = APIRouter(tags=["me"])


@router.get("/me", response_model=UserOut)
async def me(principal: CurrentPrincipal) -> UserOut:
    """The caller, once both layers accepted the bearer token. (``async``: nothing here
    blocks, and a sync route costs two thread hops, the call and its response check.)"""
    return user_out(principal.user)


@router.post("/logout", status_code=204, response_class=Response)
def logout(principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Log out every device: rotate the user key (all access tokens end now) and revoke
    every refresh-token family."""
    logout_everywhere(services, principal.user.id)
    return Response(status_code=204)


def logout_everywhere(services: Services, user_id: str) -> RevocationResult:
    """Rotate the user's key and revoke every refresh family: one transaction with the
    audit row and the event. Publishing to the bus happens after the commit and never
    fails the logout. (The API's ``POST /logout`` and the account page.)"""
    result = services.store.revoke(
        user_id, actor=user_id, reason="logout (all devices)", also=revoke_families_of([])
    )
    services.revoked(result, "logout")
    return result


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

    Its access tokens: with the default ``device`` granularity (and with ``session``) they
    are refused at once, the other devices stay signed in; with ``user`` granularity they
    stay valid until they expire (at most ``SJTI_ACCESS_TTL`` seconds; ``POST /logout``
    ends them at once, on every device).
    """
    if not end_device(services, principal.user.id, session_id):
        raise HTTPException(404, {"error": "not_found", "error_description": "no such session"})
    return DeviceLogoutOut(
        id=session_id, revoked=True, access_tokens=device_access_tokens_note(services)
    )


def end_device(services: Services, user_id: str, session_id: str) -> bool:
    """Sign one of the user's devices out; False if it is not theirs (or already out).

    With device granularity its access tokens end at once too (the device leaves the
    list on the user row, with its refresh family, the audit and the event in one
    transaction); a session from before devices were tracked only loses its refresh
    family."""
    if len(session_id) > 64:
        return False
    if services.settings.session_granularity == "device":
        result = services.store.revoke_device(
            user_id,
            session_id,
            actor=user_id,
            reason="device sign-out",
            also=revoke_family_too(session_id),
        )
        if result.count:
            services.revoked(result, "device")
            return True
    if not services.refresh.revoke_family(user_id, session_id):
        return False
    services.metrics.revocations.labels("device").inc()
    return True


def device_access_tokens_note(services: Services) -> str:
    """What a device logout does to that device's access tokens, per the granularity."""
    granularity = services.settings.session_granularity
    if granularity == "device":
        return "refused from now on (per-device granularity); the other devices stay signed in"
    if granularity == "session":
        return "refused from now on (per-session granularity)"
    return (
        f"still valid until they expire (at most {services.settings.access_ttl} s): "
        "granularity is per user; POST /logout ends them at once on every device"
    )
