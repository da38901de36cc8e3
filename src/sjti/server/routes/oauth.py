"""RFC 7009 token revocation and RFC 7662 token introspection."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request

from ...errors import TokenError
from ..auth import ServicesDep, bearer_challenge, verify_access_token
from ..services import Services
from ..sessions import revoke_family_too

router = APIRouter(tags=["oauth"])

TokenForm = Annotated[str, Form(max_length=16_384)]
ACCESS = "access_token"  # an RFC 7009 hint name
HintForm = Annotated[str | None, Form(max_length=64)]


@router.post("/revoke", responses={400: {}})
def revoke(
    services: ServicesDep, token: TokenForm, token_type_hint: HintForm = None
) -> dict[str, Any]:
    """RFC 7009. Answers 200 whether or not the token was valid (no oracle).

    * with per-device granularity (the default), either token signs its device out: that
      device's access and refresh tokens end at once, the user's other devices stay;
    * otherwise a refresh token ends its family (that device session); an access token
      ends its session's refresh tokens and, with per-user granularity, rotates the user
      key too (the only way to end an access token early: all of that user's access
      tokens end, other devices refresh silently); with per-session granularity only that
      session ends.

    Clients are public (no client authentication): holding the token is the authority.
    """
    # The hint only orders the search (RFC 7009 2.1): a wrong one must not save a token.
    kinds = (_revoke_access, _revoke_refresh)
    for attempt in kinds if token_type_hint == ACCESS else kinds[::-1]:
        if attempt(services, token):
            break
    return {}


def _revoke_refresh(services: Services, token: str) -> bool:
    found = services.refresh.lookup(token)
    if found is None:
        return False
    user_id, family_id = found
    if not _end_device(services, user_id, family_id):
        services.refresh.revoke_family(user_id, family_id)
        services.metrics.revocations.labels("rfc7009").inc()
    return True


def _end_device(services: Services, user_id: str, sid: str) -> bool:
    """Device granularity: the device signed out (its access and refresh tokens end at
    once, in one transaction); False if devices are not tracked for it."""
    if services.settings.session_granularity != "device":
        return False
    result = services.store.revoke_device(
        user_id, sid, actor=user_id, reason="RFC 7009 revocation", also=revoke_family_too(sid)
    )
    if result.count:
        services.revoked(result, "rfc7009")
    return result.count > 0


def _revoke_access(services: Services, token: str) -> bool:
    try:
        claims, user = verify_access_token(services, token)
    except TokenError:
        return False
    sid = claims.get("sid")
    if isinstance(sid, str) and _end_device(services, user.id, sid):
        return True
    if services.settings.session_granularity in ("user", "device"):
        # Key rotation and that session's refresh tokens: one transaction.
        also = revoke_family_too(sid) if isinstance(sid, str) else None
        result = services.store.revoke(
            user.id, actor=user.id, reason="RFC 7009 revocation", also=also
        )
        services.revoked(result, "rfc7009")
    elif isinstance(sid, str):
        services.refresh.revoke_family(user.id, sid)
    return True


def _client_authenticated(services: Services, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    settings = services.settings
    if scheme.lower() == "basic" and settings.introspection_client_secret is not None:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
        expected = settings.introspection_client_secret.get_secret_value()
        return hmac.compare_digest(
            client_id.encode(), (settings.introspection_client_id or "").encode()
        ) & hmac.compare_digest(secret.encode(), expected.encode())
    if scheme.lower() == "bearer":
        try:
            _, user = verify_access_token(services, value.strip())
        except TokenError:
            return False
        return "admin" in user.roles
    return False


@router.post("/introspect", responses={401: {}})
def introspect(
    request: Request, services: ServicesDep, token: TokenForm, token_type_hint: HintForm = None
) -> dict[str, Any]:
    """RFC 7662, for authenticated clients: an admin bearer token, or HTTP Basic with
    ``SJTI_INTROSPECTION_CLIENT_ID`` / ``SJTI_INTROSPECTION_CLIENT_SECRET``."""
    if not _client_authenticated(services, request):
        raise HTTPException(
            401,
            {"error": "invalid_client", "error_description": "client authentication required"},
            {"WWW-Authenticate": bearer_challenge("invalid_client")},
        )
    kinds = (_introspect_access, _introspect_refresh)
    for attempt in kinds if token_type_hint == ACCESS else kinds[::-1]:
        answer = attempt(services, token)
        if answer is not None:
            return answer
    return {"active": False}


def _introspect_refresh(services: Services, token: str) -> dict[str, Any] | None:
    found = services.refresh.lookup(token)
    if found is None:
        return None
    return {"active": True, "token_type": "refresh_token", "sub": found[0], "sid": found[1]}


def _introspect_access(services: Services, token: str) -> dict[str, Any] | None:
    try:
        claims, user = verify_access_token(services, token)
    except TokenError:
        return None
    answer: dict[str, Any] = {
        "active": True,
        "token_type": "access_token",
        "username": user.username,
    }
    for name in ("sub", "iss", "aud", "exp", "iat", "nbf", "jti", "sid", "roles", "tenant"):
        if name in claims:
            answer[name] = claims[name]
    return answer
