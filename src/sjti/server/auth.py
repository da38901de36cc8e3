"""Bearer authentication (RFC 6750) and the error answers every route shares.

``WWW-Authenticate: Bearer error="invalid_token", error_description="<code>"`` where
``<code>`` is the core's stable error code (``expired``, ``revoked``, ``bad_signature``...).
Messages never contain the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .._core.binding import UserKey
from .._core.claims import Claims
from ..errors import RevokedTokenError, TokenError, UnwrapError
from ..stores.layouts import user_key_from_row
from .db import LAYOUT
from .services import Services
from .users import User, user_from_row

__all__ = [
    "AdminPrincipal",
    "CurrentPrincipal",
    "Principal",
    "bearer_challenge",
    "get_services",
    "verify_access_token",
]

REALM = "sjti"


def bearer_challenge(error: str | None = None, description: str | None = None) -> str:
    """The ``WWW-Authenticate`` value; no error attributes when no credentials were sent."""
    parts = [f'realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
    if description is not None:
        parts.append(f'error_description="{description}"')
    return "Bearer " + ", ".join(parts)


def _unauthorized(error: str | None, description: str | None, message: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={
            "error": error or "unauthorized",
            "code": description or error or "missing_token",  # the core's code if any
            "error_description": message,
        },
        headers={"WWW-Authenticate": bearer_challenge(error, description)},
    )


async def get_services(request: Request) -> Services:
    """The process's services. (``async``: FastAPI runs a sync dependency in a worker
    thread, a hop that costs more CPU than this attribute read.)"""
    services: Services = request.app.state.services
    return services


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: verified claims (both layers) and the loaded user."""

    claims: Claims
    user: User

    @property
    def session_id(self) -> str | None:
        sid = self.claims.get("sid")
        return sid if isinstance(sid, str) else None


def verify_access_token(services: Services, token: str) -> tuple[Claims, User]:
    """Both layers, the session check (per-session granularity) and the user row.

    The user layer verifies with the key in the user row this request loads anyway (the
    blog's design: one query authorizes and verifies, zero extra round trips), so the
    answer is as current as the database: no cache, no staleness window, whatever the bus
    does. Raises :class:`TokenError`; counts the outcome.
    """
    loaded: list[User] = []

    def key_from_the_user_row(user_id: str) -> UserKey:
        row = services.user_rows.with_key(user_id)
        try:
            key = (
                None if row is None else user_key_from_row(row, services.material.kek_ring, LAYOUT)
            )
        except UnwrapError:
            if row is not None:  # only a present row can fail to open
                services.note_unwrap_failure(row["token_secret"])
            raise
        if row is None or key is None or row["disabled_at"] is not None:
            raise RevokedTokenError()  # unknown, disabled, or a user that never had a key
        loaded.append(user_from_row(row))
        return key

    try:
        claims = services.verifier.verify_with(token, key_from_the_user_row)
        sid = claims.get("sid")
        if (
            services.settings.session_granularity == "session"
            and isinstance(sid, str)
            and services.refresh.is_revoked(sid)
        ):
            raise RevokedTokenError()
        user = loaded[0]
    except TokenError as exc:
        services.metrics.verifications.labels(exc.code).inc()
        raise
    services.metrics.verifications.labels("accepted").inc()
    return claims, user


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise _unauthorized(None, None, "bearer token required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("invalid_request", None, "expected 'Authorization: Bearer <token>'")
    return token.strip()


_bearer = HTTPBearer(auto_error=False, scheme_name="bearer")


async def current_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    """The dependency behind every bearer-protected route. (``_declared`` only puts the
    bearer scheme in the OpenAPI document; the header is parsed here, strictly.)

    The verification (its database read blocks) runs in one worker thread: the only
    thread hop of a request whose route is ``async`` (each hop costs ~80 µs of CPU)."""
    token = _bearer_token(request)
    try:
        claims, user = await anyio.to_thread.run_sync(verify_access_token, services, token)
    except TokenError as exc:
        raise _unauthorized("invalid_token", exc.code, "invalid token") from None
    return Principal(claims, user)


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """The caller, who must hold the admin role (else 403 ``insufficient_scope``)."""
    if "admin" not in principal.user.roles:
        raise HTTPException(
            status_code=403,
            detail={"error": "insufficient_scope", "error_description": "admin role required"},
            headers={"WWW-Authenticate": bearer_challenge("insufficient_scope")},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]


def access_claims(services: Services, user: User, family_id: str) -> dict[str, Any]:
    """The application claims of a new access token (all bound by ``sjti``)."""
    claims: dict[str, Any] = {"roles": user.roles, "sid": family_id}
    if user.tenant is not None:
        claims["tenant"] = user.tenant
    return claims
