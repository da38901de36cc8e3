"""The pages' own session: an sjti access token and its refresh token, in cookies.

* ``access``: the access token the password grant minted (both layers checked on every
  page, like ``/me``); ``refresh``: its refresh token, used (and rotated, with reuse
  detection) by the same grant as ``POST /token`` when the access token is refused.
  Signing out everywhere rotates the user key and ends every refresh family, so the next
  page asks to sign in again: the page is a client like any other, with no session store
  of its own.
* Cookies are ``HttpOnly`` and ``SameSite=Lax``; ``Secure`` with the ``__Host-`` prefix
  (no ``Domain``, ``Path=/``: a sibling host cannot set or shadow them) whenever the
  request came over HTTPS or the service runs with ``SJTI_ENV=production``.
* CSRF: every form carries ``csrf_token = HMAC-SHA256(csrf cookie, "sid:" + session id)``
  (the signed double-submit pattern, bound to the session: a token taken from one session
  is refused in another). Before sign-in the binding is the word ``signin``; the secret is
  replaced at sign-in (no fixation). Posts from another site (``Sec-Fetch-Site``
  ``cross-site`` or ``same-site``) are refused before anything else, and ``SameSite``
  keeps the cookies off cross-site ones anyway.
* The page session is its device session: the access token passes both layers *and* its
  refresh family must be live, whatever the granularity (a device signed out on the
  account page stops at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from starlette.responses import RedirectResponse

from ...errors import TokenError
from ..auth import Principal, ServicesDep, verify_access_token
from ..models import TokenOut
from ..routes.auth import refresh_grant
from ..services import Services

__all__ = [
    "CSRF_FIELD",
    "SIGNIN",
    "AdminSession",
    "Cookies",
    "PageSession",
    "SignInRequired",
    "SignedIn",
    "check_csrf",
    "clear_session",
    "cookies_for",
    "csrf_secret",
    "csrf_token",
    "drop_queued_cookies",
    "load_session",
    "queue_cookies",
    "safe_next",
    "set_session",
    "sign_in_redirect",
]

CSRF_FIELD: Final = "csrf_token"
SIGNIN: Final = "signin"
_MAX_COOKIE: Final = 8192


@dataclass(frozen=True, slots=True)
class Cookies:
    """The cookie names and flags for this request's scheme and environment."""

    access: str
    refresh: str
    csrf: str
    secure: bool


def cookies_for(request: Request, services: Services) -> Cookies:
    secure = request.url.scheme == "https" or services.settings.env == "production"
    prefix = "__Host-" if secure else ""
    return Cookies(f"{prefix}sjti-access", f"{prefix}sjti-refresh", f"{prefix}sjti-csrf", secure)


def csrf_token(secret: str, binding: str) -> str:
    """The form token for ``binding`` (``sid:<session>`` or ``signin``) under ``secret``."""
    mac = hmac.new(secret.encode(), b"sjti-web-csrf-v1\0" + binding.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def _forbidden(description: str) -> HTTPException:
    return HTTPException(403, {"error": "invalid_csrf_token", "error_description": description})


# Sec-Fetch-Site values of a post these pages' own forms make (a browser sends
# same-origin; "none" is a user-initiated request). A sibling host ("same-site") is not
# this origin: without the __Host- prefix (plain HTTP in development) it can set cookies
# here, the CSRF secret included, so its posts are refused like cross-site ones.
_OWN_SITE: Final = frozenset({"same-origin", "none"})


def check_csrf(request: Request, cookies: Cookies, token: str, binding: str) -> None:
    """Refuse (403 ``invalid_csrf_token``) a post from another origin (``Sec-Fetch-Site``
    ``cross-site`` or ``same-site``) or a token that is not this session's. Constant-time
    comparison."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _OWN_SITE:
        raise _forbidden("form posts from another site are refused")
    secret = request.cookies.get(cookies.csrf)
    if not secret or not token or len(token) > 128:
        raise _forbidden("the form's CSRF token is missing; reload the page and try again")
    if not hmac.compare_digest(token.encode(), csrf_token(secret, binding).encode()):
        raise _forbidden("the form's CSRF token is not this session's; reload the page")


@dataclass(frozen=True, slots=True)
class PageSession:
    """A signed-in page request: who, its cookies, and its CSRF secret."""

    principal: Principal
    cookies: Cookies
    csrf_secret: str
    refresh_token: str | None = None  # the live one (rotated on the way if it was)

    @property
    def session_id(self) -> str:
        return self.principal.session_id or ""

    @property
    def csrf(self) -> str:
        return csrf_token(self.csrf_secret, f"sid:{self.session_id}")


PENDING: Final = "sjti_web_cookies"


def queue_cookies(request: Request, response: Response) -> None:
    """Send ``response``'s Set-Cookie headers with whatever this request answers, error
    pages included (:class:`~._render.SecurityHeaders` adds them): a refresh token
    rotated on the way must reach the browser, or its next use would look like theft."""
    pending: list[tuple[bytes, bytes]] = getattr(request.state, PENDING, [])
    pending.extend((k, v) for k, v in response.raw_headers if k == b"set-cookie")
    setattr(request.state, PENDING, pending)


def drop_queued_cookies(request: Request) -> None:
    """The answer sets (or clears) the session cookies itself."""
    setattr(request.state, PENDING, [])


class SignInRequired(Exception):
    """No page session: answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in required")
        self.next_path = next_path


def _set(response: Response, cookies: Cookies, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=cookies.secure,
        httponly=True,
        samesite="lax",
    )


def set_session(response: Response, cookies: Cookies, tokens: TokenOut, services: Services) -> None:
    _set(response, cookies, cookies.access, tokens.access_token, tokens.expires_in)
    _set(response, cookies, cookies.refresh, tokens.refresh_token, services.settings.refresh_ttl)


def clear_session(response: Response, cookies: Cookies) -> None:
    for name in (cookies.access, cookies.refresh, cookies.csrf):
        response.delete_cookie(name, path="/", secure=cookies.secure, httponly=True)


def csrf_secret(request: Request, cookies: Cookies) -> tuple[str, bool]:
    """The CSRF secret from its cookie, or a new one (True: set it on the response)."""
    secret = request.cookies.get(cookies.csrf)
    if secret and 20 <= len(secret) <= 64:
        return secret, False
    return secrets.token_urlsafe(32), True


def _device_live(services: Services, sid: object) -> bool:
    """A page session *is* its device session (refresh family): signed out on the account
    page, revoked with its user, or ended by reuse detection, the page stops at once,
    whatever ``SESSION_GRANULARITY`` does for API access tokens (a signed-out browser must
    not go on acting, in the console least of all). Per-session granularity already
    checked it in :func:`verify_access_token`."""
    if not isinstance(sid, str) or not sid:
        return False
    if services.settings.session_granularity == "session":
        return True
    return not services.refresh.is_revoked(sid)


def load_session(request: Request, services: Services) -> PageSession | None:
    """The signed-in user from the access cookie, else from the refresh cookie (rotating
    it, reuse detection included), else ``None``."""
    cookies = cookies_for(request, services)
    secret, fresh = csrf_secret(request, cookies)
    session: PageSession | None = None
    renewed: TokenOut | None = None
    access = request.cookies.get(cookies.access)
    refresh = request.cookies.get(cookies.refresh)
    if refresh is not None and len(refresh) > 512:
        refresh = None
    if access and len(access) <= _MAX_COOKIE:
        try:
            claims, user = verify_access_token(services, access)
            if _device_live(services, claims.get("sid")):
                session = PageSession(Principal(claims, user), cookies, secret, refresh)
        except TokenError:
            pass
    if session is None and refresh:
        try:
            renewed = refresh_grant(services, Response(), refresh)
            claims, user = verify_access_token(services, renewed.access_token)
            session = PageSession(Principal(claims, user), cookies, secret, renewed.refresh_token)
        except (HTTPException, TokenError):
            session = None
    if session is not None:
        carrier = Response()
        if renewed is not None:
            set_session(carrier, cookies, renewed, services)
        if fresh:
            _set(carrier, cookies, cookies.csrf, secret, None)
        queue_cookies(request, carrier)
    return session


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path of these pages only (never another site)."""
    if (
        value
        and value.startswith(("/account", "/admin"))
        and "//" not in value
        and len(value) <= 200
        and all(c.isalnum() or c in "/-_.?=&%" for c in value)
    ):
        return value
    return "/account"


def sign_in_redirect(next_path: str) -> RedirectResponse:
    """To the sign-in page. The cookies stay: this answer may be to a cross-site request,
    which must not be able to sign anyone out."""
    return RedirectResponse(f"/account/signin?next={quote(safe_next(next_path))}", 303)


def signed_in(request: Request, services: ServicesDep) -> PageSession:
    session = load_session(request, services)
    if session is None:
        raise SignInRequired(request.url.path if request.method == "GET" else "/account")
    return session


def admin_session(session: Annotated[PageSession, Depends(signed_in)]) -> PageSession:
    """The console's user, who must hold the admin role (else 403 ``insufficient_scope``,
    the API's answer, as a page)."""
    if "admin" not in session.principal.user.roles:
        raise HTTPException(
            403, {"error": "insufficient_scope", "error_description": "admin role required"}
        )
    return session


SignedIn = Annotated[PageSession, Depends(signed_in)]
AdminSession = Annotated[PageSession, Depends(admin_session)]
