"""The account page (``/account``): sign in, my devices, sign out, password, events.

Every change calls the code path the API uses (the password and refresh grants of
``POST /token``, ``DELETE /sessions/{id}``, ``POST /logout``) or the store's revocation
with an ``also`` plan: a key rotation, the refresh families it ends, a new password hash,
the audit row and the event commit in one transaction.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, HTTPException, Request, Response
from starlette.responses import HTMLResponse, RedirectResponse

from ..auth import ServicesDep
from ..models import TokenOut
from ..passwords import MAX_PASSWORD, password_problem
from ..routes.auth import (
    password_failed,
    password_grant,
    password_succeeded,
    password_wait,
    refresh_grant,
)
from ..routes.me import end_device, logout_everywhere
from ..services import Services
from ..sessions import SessionEnded, revoke_other_families_too, set_password_too
from ..users import get_by_name
from ._queries import user_events
from ._render import render
from ._session import (
    CSRF_FIELD,
    SIGNIN,
    PageSession,
    SignedIn,
    check_csrf,
    clear_session,
    cookies_for,
    csrf_secret,
    csrf_token,
    drop_queued_cookies,
    load_session,
    safe_next,
    set_session,
)
from .useragent import device_label

__all__ = ["router"]

router = APIRouter(prefix="/account", include_in_schema=False)

CsrfField = Annotated[str, Form(alias=CSRF_FIELD, max_length=128)]
NOTICES: Final = {
    "device": "That device is signed out.",
    "others": "Every other device is signed out. This one stays signed in.",
    "password": "Password changed. Every other device is signed out.",
    "signed-out": "You are signed out on this device.",
    "everywhere": "You are signed out everywhere, on every device.",
    "raced": (
        "Nothing was changed: this account changed while your request ran (another device "
        "signed out or changed the password). Check below and try again."
    ),
}


def granularity_words(services: Services) -> dict[str, str]:
    """What each button does to access tokens, in plain words, for this service's
    ``SJTI_SESSION_GRANULARITY``."""
    minutes = max(1, services.settings.access_ttl // 60)
    per_device = services.settings.session_granularity in ("device", "session")
    if per_device:
        device = "Its refresh token and its access tokens stop working now."
        this = "This browser's refresh and access tokens stop working now."
    else:
        device = (
            "Its refresh token stops working now, and so does its session on these pages. "
            "An access token an app on it already holds keeps working until it expires (at "
            f"most {minutes} min), because this service checks revocation per user. To end "
            "those at once, sign out all other devices."
        )
        this = (
            "This browser forgets its tokens and its refresh token stops working now. "
            f"Its access token stays valid until it expires (at most {minutes} min) but "
            "only this browser ever held it."
        )
    return {
        "device": device,
        "this": this,
        "others": (
            "Every other device's refresh and access tokens stop working now. "
            "This browser stays signed in."
        ),
        "everywhere": (
            "Every device, this one included, is signed out now: all access and refresh "
            "tokens stop working at once."
        ),
    }


def _client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _signin_page(
    request: Request,
    services: Services,
    *,
    next_path: str,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    cookies = cookies_for(request, services)
    secret, fresh = csrf_secret(request, cookies)
    page = render(
        request,
        "signin.html",
        {
            "user": None,
            "csrf": csrf_token(secret, SIGNIN),
            "next": next_path,
            "error": error,
            "notice": notice,
        },
        status=status,
    )
    if fresh:
        page.set_cookie(
            cookies.csrf, secret, path="/", secure=cookies.secure, httponly=True, samesite="lax"
        )
    return page


@router.get("/signin", response_class=HTMLResponse)
def signin_form(
    request: Request, services: ServicesDep, next: str | None = None, done: str | None = None
) -> Response:
    if load_session(request, services) is not None:
        return RedirectResponse(safe_next(next), 303)
    return _signin_page(
        request, services, next_path=safe_next(next), notice=NOTICES.get(done or "")
    )


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    services: ServicesDep,
    csrf: CsrfField = "",
    username: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    next: Annotated[str, Form(max_length=256)] = "/account",
) -> Response:
    """The password grant of ``POST /token``; the tokens go into cookies."""
    cookies = cookies_for(request, services)
    check_csrf(request, cookies, csrf, SIGNIN)
    try:
        tokens = password_grant(services, request, Response(), username, password)
    except HTTPException as refused:
        words = {
            401: "Wrong username or password.",
            429: "Too many failed attempts. Wait a minute and try again.",
            503: "The account changed while signing in. Try again.",
        }.get(refused.status_code, "Sign-in refused.")
        return _signin_page(
            request, services, next_path=safe_next(next), error=words, status=refused.status_code
        )
    response = RedirectResponse(safe_next(next), 303)
    _start(response, request, services, tokens)
    return response


def _start(response: Response, request: Request, services: Services, tokens: TokenOut) -> None:
    """Session cookies for new tokens, and a new CSRF secret (none chosen before sign-in
    survives it)."""
    cookies = cookies_for(request, services)
    drop_queued_cookies(request)
    set_session(response, cookies, tokens, services)
    response.set_cookie(
        cookies.csrf,
        secrets.token_urlsafe(32),
        path="/",
        secure=cookies.secure,
        httponly=True,
        samesite="lax",
    )


def _account_context(services: Services, session: PageSession) -> dict[str, Any]:
    user = session.principal.user
    devices = [
        {
            "id": f.id,
            "label": device_label(f.user_agent),
            "user_agent": f.user_agent,
            "created_at": f.created_at,
            "last_used_at": f.last_used_at,
            "ip": f.ip,
            "current": f.id == session.session_id,
        }
        for f in services.refresh.list_for(user.id)
    ]
    devices.sort(key=lambda d: not d["current"])  # this device first
    return {
        "user": user,
        "csrf": session.csrf,
        "devices": devices,
        "events": user_events(services, user.id),
        "words": granularity_words(services),
        "granularity": services.settings.session_granularity,
    }


@router.get("", response_class=HTMLResponse)
def account(
    request: Request, session: SignedIn, services: ServicesDep, done: str | None = None
) -> HTMLResponse:
    context = _account_context(services, session)
    return render(request, "account.html", {**context, "notice": NOTICES.get(done or "")})


def _signed_out(request: Request, services: Services, done: str) -> RedirectResponse:
    response = RedirectResponse(f"/account/signin?done={done}", 303)
    drop_queued_cookies(request)
    clear_session(response, cookies_for(request, services))
    return response


@router.post("/devices/{device_id}/sign-out")
def sign_out_device(
    device_id: str,
    request: Request,
    session: SignedIn,
    services: ServicesDep,
    csrf: CsrfField = "",
) -> Response:
    """``DELETE /sessions/{id}``'s code path: that device's refresh family ends."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    if not end_device(services, session.principal.user.id, device_id):
        raise HTTPException(404, {"error": "not_found", "error_description": "no such device"})
    if device_id == session.session_id:
        return _signed_out(request, services, "signed-out")
    return RedirectResponse("/account?done=device", 303)


@router.post("/sign-out")
def sign_out(
    request: Request, session: SignedIn, services: ServicesDep, csrf: CsrfField = ""
) -> Response:
    """This device: its refresh family ends and the cookies go."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    end_device(services, session.principal.user.id, session.session_id)
    return _signed_out(request, services, "signed-out")


@router.post("/sign-out-everywhere")
def sign_out_everywhere(
    request: Request, session: SignedIn, services: ServicesDep, csrf: CsrfField = ""
) -> Response:
    """``POST /logout``'s code path: the key rotates, every family ends."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    logout_everywhere(services, session.principal.user.id)
    return _signed_out(request, services, "everywhere")


def _revoke_keeping_this_device(
    request: Request,
    services: Services,
    session: PageSession,
    *,
    reason: str,
    also: Any,
    done: str,
) -> Response:
    """A revocation of this user that keeps this device's family (``also`` decides which
    end, and checks in the transaction that this device is still signed in), then this
    page's next tokens from its own refresh token (the grant of ``POST /token``).

    If the account changed while the request ran (this device signed out, or the password
    changed, by another request), nothing commits and the page says so; if this page's
    refresh token no longer works, the page is signed out."""
    user_id = session.principal.user.id
    try:
        result = services.store.revoke(user_id, actor=user_id, reason=reason, also=also)
    except SessionEnded:
        return RedirectResponse("/account?done=raced", 303)
    services.revoked(result, "logout")
    try:
        tokens = refresh_grant(services, Response(), session.refresh_token or "")
    except HTTPException:
        return _signed_out(request, services, "signed-out")
    response = RedirectResponse(f"/account?done={done}", 303)
    _start(response, request, services, tokens)
    return response


@router.post("/sign-out-others")
def sign_out_others(
    request: Request, session: SignedIn, services: ServicesDep, csrf: CsrfField = ""
) -> Response:
    """The key rotates and every other family ends, in one transaction; this page mints
    its next tokens from its own (kept) refresh token."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    also = revoke_other_families_too(session.session_id, [])
    return _revoke_keeping_this_device(
        request, services, session, reason="sign out all other devices", also=also, done="others"
    )


@router.post("/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    session: SignedIn,
    services: ServicesDep,
    csrf: CsrfField = "",
    current_password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    new_password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    new_password_again: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
) -> Response:
    """Needs the current password (failures count like failed logins); the new hash, the
    key rotation and every other device's end commit together; this device stays."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    user = session.principal.user
    ip = _client_ip(request)
    problem: str | None = None
    status = 400
    found = None
    if password_wait(services, ip, user.username):
        problem, status = "Too many wrong passwords. Wait a minute and try again.", 429
    else:
        found = get_by_name(services.engine, user.username)
        if found is None or not services.passwords.verify(found.password_hash, current_password):
            password_failed(services, ip, user.username)
            problem = "The current password is wrong."
        elif new_password != new_password_again:
            problem = "The two new passwords differ."
        else:
            weak = password_problem(new_password, user.username)
            problem = None if weak is None else f"The new {weak}."
    if problem is not None or found is None:
        context = _account_context(services, session)
        return render(
            request,
            "account.html",
            {**context, "notice": None, "password_error": problem},
            status=status,
        )
    password_succeeded(services, ip, user.username)
    also = set_password_too(
        services.passwords.hash(new_password),
        revoke_other_families_too(session.session_id, []),
        replacing=found.password_hash,
    )
    return _revoke_keeping_this_device(
        request, services, session, reason="password changed", also=also, done="password"
    )
