"""Registration and the OAuth2 token endpoint (password and refresh_token grants)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response

from ..auth import ServicesDep, access_claims, bearer_challenge
from ..models import NewUser, TokenOut, UserOut
from ..services import Services
from ..sessions import (
    AccountChanged,
    DevicesTracked,
    InvalidRefreshToken,
    Minted,
    NoSecretYet,
    ReuseDetected,
    revoke_family_too,
)
from ..users import DuplicateUserError, User, create_user, get_by_name

router = APIRouter(tags=["users and tokens"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# A login answers once every live node has applied its sign-in event (so none refuses the
# new device's first token), waiting at most this long: a node that lags more refuses the
# device until it catches up (fail closed), the login itself is not held for it.
SIGN_IN_WAIT = 1.0


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        roles=user.roles,
        tenant=user.tenant,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


@router.post("/users", status_code=201, response_model=UserOut, responses={409: {}, 429: {}})
def register(body: NewUser, services: ServicesDep, request: Request) -> UserOut:
    """Create a user (argon2id password hash) with the ``user`` role; 409 if the username is
    taken. No role is ever granted here: admins come from ``sjti users``. Attempts are
    throttled per client (``SJTI_REGISTRATIONS_PER_IP`` a window): the 409/201 difference
    must not become a free username oracle."""
    ip = request.client.host if request.client is not None else "unknown"
    wait = services.register_limiter.retry_after(ip)
    if wait:
        raise HTTPException(
            429,
            {"error": "too_many_attempts", "error_description": "too many registrations"},
            {"Retry-After": str(wait)},
        )
    services.register_limiter.failed(ip)  # every attempt counts, taken or not
    try:
        user = create_user(
            services.engine,
            body.username,
            services.passwords.hash(body.password),
            role="user",
            tenant=None,
        )
    except DuplicateUserError:
        raise HTTPException(
            409, {"error": "conflict", "error_description": "username taken"}
        ) from None
    return user_out(user)


def _has_control(value: str | None) -> bool:
    """NUL and other control characters: never part of a name, password or token."""
    return value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _grant_error(status: int, error: str, description: str) -> HTTPException:
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = bearer_challenge()
    return HTTPException(status, {"error": error, "error_description": description}, headers)


def _tokens(services: Services, minted: Minted, response: Response) -> TokenOut:
    """Sign with the key read in the grant's transaction (never a later read)."""
    response.headers.update(_NO_STORE)
    access = services.issuer.issue(
        minted.user.id,
        minted.key,
        claims=access_claims(services, minted.user, minted.session.family_id),
    )
    return TokenOut(
        access_token=access,
        expires_in=services.settings.access_ttl,
        refresh_token=minted.session.token,
    )


def _with_secret(services: Services, user_id: str, mint: Callable[[], Minted]) -> Minted:
    """Mint; a user's very first grant creates their secret first (then mints again)."""
    try:
        return mint()
    except NoSecretYet:
        services.store.ensure(user_id)
        return mint()


def password_wait(services: Services, ip: str, name: str) -> int:
    """Seconds before ``ip`` may try another password for ``name`` (0: now). Failures
    count per account *and* client: a stranger's guesses lock out only the stranger, never
    the owner (the per-IP limit bounds a stranger across accounts). Every place that checks
    a password (the grant, the account page's password change) asks this first."""
    return max(
        services.ip_limiter.retry_after(ip), services.user_limiter.retry_after(f"{name}\0{ip}")
    )


def password_failed(services: Services, ip: str, name: str) -> None:
    """Count a wrong password against the client and the account (see :func:`password_wait`)."""
    services.ip_limiter.failed(ip)
    services.user_limiter.failed(f"{name}\0{ip}")


def password_succeeded(services: Services, ip: str, name: str) -> None:
    services.user_limiter.succeeded(f"{name}\0{ip}")


def password_grant(
    services: Services, request: Request, response: Response, username: str, password: str
) -> TokenOut:
    ip = request.client.host if request.client is not None else "unknown"
    name = username.strip().lower()[:64]
    wait = password_wait(services, ip, name)
    if wait:
        services.metrics.logins.labels("password", "throttled").inc()
        raise HTTPException(
            429,
            {"error": "too_many_attempts", "error_description": "too many failed logins"},
            {"Retry-After": str(wait), **_NO_STORE},
        )
    found = get_by_name(services.engine, name)  # the key version as the request starts
    # Unknown users cost one argon2 verification too: the timing says nothing.
    ok = services.passwords.verify(found.password_hash if found else None, password[:1024])
    if found is None or not ok or found.user.disabled_at is not None:
        password_failed(services, ip, name)
        services.metrics.logins.labels("password", "failed").inc()
        raise _grant_error(401, "invalid_grant", "invalid username or password")
    password_succeeded(services, ip, name)
    user_id = found.user.id
    user_agent = request.headers.get("user-agent")
    settings = services.settings

    def login_device() -> Minted:
        return services.refresh.login_device(
            services.store,
            user_id,
            found.key_version,
            user_agent=user_agent,
            ip=ip,
            max_devices=settings.max_devices,
            wait=min(settings.revoke_wait_timeout, SIGN_IN_WAIT),
        )

    try:
        if settings.session_granularity == "device":
            minted = login_device()
        else:
            try:
                minted = _with_secret(
                    services,
                    user_id,
                    lambda: services.refresh.login(
                        user_id, found.key_version, user_agent=user_agent, ip=ip
                    ),
                )
            except DevicesTracked:
                # Signed in under device granularity before: the user's key lists devices
                # and refuses any other, whatever this service's granularity now is.
                minted = login_device()
    except AccountChanged:
        # A revocation of this user committed while we checked the password: a token
        # minted now would outlive it. The client simply asks again.
        services.metrics.logins.labels("password", "raced").inc()
        raise HTTPException(
            503,
            {"error": "temporarily_unavailable", "error_description": "account changed; retry"},
            {"Retry-After": "0", **_NO_STORE},
        ) from None
    services.metrics.logins.labels("password", "ok").inc()
    return _tokens(services, minted, response)


def refresh_grant(services: Services, response: Response, refresh_token: str) -> TokenOut:
    try:
        minted = services.refresh.rotate(refresh_token)
    except NoSecretYet:
        raise _grant_error(400, "invalid_grant", "invalid refresh token") from None
    except ReuseDetected as reuse:
        # Theft is likely. With device granularity that device is signed out (its access
        # tokens end at once, the user's other devices stay); otherwise, or if the
        # operator chose it, the user key rotates too (every device). One transaction
        # with the family, the audit row and the event either way.
        reason = f"refresh token reuse detected in session {reuse.family_id}"
        also = revoke_family_too(reuse.family_id)
        settings = services.settings
        if settings.session_granularity == "device" and not settings.reuse_rotates_key:
            result = services.store.revoke_device(
                reuse.user_id, reuse.family_id, actor="sjti-server", reason=reason, also=also
            )
            if result.count == 0:  # a session from before devices were tracked
                result = services.store.revoke(
                    reuse.user_id, actor="sjti-server", reason=reason, also=also
                )
        else:
            result = services.store.revoke(
                reuse.user_id, actor="sjti-server", reason=reason, also=also
            )
        services.revoked(result, "reuse")
        services.metrics.logins.labels("refresh_token", "reuse").inc()
        raise _grant_error(400, "invalid_grant", "refresh token reused; session revoked") from None
    except InvalidRefreshToken:
        services.metrics.logins.labels("refresh_token", "failed").inc()
        raise _grant_error(400, "invalid_grant", "invalid refresh token") from None
    services.metrics.logins.labels("refresh_token", "ok").inc()
    return _tokens(services, minted, response)


@router.post(
    "/token",
    response_model=TokenOut,
    responses={400: {}, 401: {}, 429: {}},
)
def token(
    request: Request,
    response: Response,
    services: ServicesDep,
    grant_type: Annotated[str, Form(max_length=64)],
    username: Annotated[str | None, Form(max_length=256)] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=512)] = None,
    scope: Annotated[str | None, Form(max_length=512)] = None,
) -> TokenOut:
    """OAuth2 token endpoint: ``password`` grant (login) or ``refresh_token`` (rotation)."""
    if any(_has_control(v) for v in (grant_type, username, password, refresh_token, scope)):
        raise _grant_error(400, "invalid_request", "control characters are not allowed")
    if grant_type == "password":
        if username is None or password is None:
            raise _grant_error(400, "invalid_request", "username and password are required")
        return password_grant(services, request, response, username, password)
    if grant_type == "refresh_token":
        if refresh_token is None:
            raise _grant_error(400, "invalid_request", "refresh_token is required")
        return refresh_grant(services, response, refresh_token)
    raise _grant_error(400, "unsupported_grant_type", "use password or refresh_token")
