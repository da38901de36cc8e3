"""BoundaryMiddleware: the boundary layer as pure ASGI, refusals shaped by RFC 6750."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sjti import (
    BoundaryVerifier,
    ClaimsPolicy,
    ConfigurationError,
    Issuer,
    SigningKey,
    UserKey,
    UserVerifier,
)
from sjti.asgi import (
    CLAIMS_KEY,
    TOKEN_KEY,
    BoundaryMiddleware,
    Message,
    Receive,
    Scope,
    Send,
    bearer_token,
)
from sjti.errors import MalformedTokenError, RevokedTokenError
from sjti.testing import FrozenClock

pytestmark = pytest.mark.anyio


class Echo:
    """The app behind the middleware: records each scope and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def echo() -> Echo:
    return Echo()


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_puts_claims_and_token_in_scope(
    echo: Echo, boundary: BoundaryVerifier, issuer: Issuer, user_key: UserKey
) -> None:
    """The app behind the middleware reads the verified claims from the scope."""
    token = issuer.issue("alice", user_key)
    async with client_for(BoundaryMiddleware(echo, boundary)) as client:
        response = await client.get("/api", headers=bearer(token))
    assert response.status_code == 200
    assert echo.scopes[0][CLAIMS_KEY]["sub"] == "alice"
    assert echo.scopes[0][TOKEN_KEY] == token


async def test_expired_token_is_401_with_rfc6750_challenge(
    echo: Echo, boundary: BoundaryVerifier, issuer: Issuer, user_key: UserKey, clock: FrozenClock
) -> None:
    """An expired token gets the RFC 6750 error shape with the stable code, never the app."""
    token = issuer.issue("alice", user_key, ttl=60)
    clock.advance(61)
    async with client_for(BoundaryMiddleware(echo, boundary, realm="api")) as client:
        response = await client.get("/api", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="expired"'
    )
    assert response.json() == {"error": "invalid_token", "error_description": "expired"}
    assert response.headers["cache-control"] == "no-store"
    assert echo.scopes == []


async def test_missing_token_is_401_without_error_attribute(
    echo: Echo, boundary: BoundaryVerifier
) -> None:
    """RFC 6750 §3.1: a request without credentials gets a bare challenge."""
    async with client_for(BoundaryMiddleware(echo, boundary, realm="api")) as client:
        response = await client.get("/api")
        other_scheme = await client.get("/api", headers={"Authorization": "Basic dTpw"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"error": "missing_token"}
    assert other_scheme.headers["www-authenticate"] == 'Bearer realm="api"'
    assert echo.scopes == []


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer not-a-jwt", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer a b", "malformed"),
        ("Bearer eyJ.eyJ.sig", "malformed"),
    ],
)
async def test_malformed_token_is_401_malformed(
    echo: Echo, boundary: BoundaryVerifier, header: str, code: str
) -> None:
    """Garbage after "Bearer" is a refused token, not a missing one."""
    async with client_for(BoundaryMiddleware(echo, boundary)) as client:
        response = await client.get("/api", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="{code}"'
    )


async def test_foreign_key_token_is_refused(echo: Echo, boundary: BoundaryVerifier) -> None:
    """A token signed by another issuer's key never reaches the app."""
    forger = Issuer(SigningKey.generate("HS256"), issuer="https://auth.example.com",
                    audience="https://api.example.com")  # fmt: skip
    async with client_for(BoundaryMiddleware(echo, boundary)) as client:
        response = await client.get("/", headers=bearer(forger.issue("a", UserKey.generate())))
    assert response.status_code == 401
    assert response.json()["error_description"] in {"unknown_kid", "bad_signature"}


async def test_revoked_token_passes_boundary_but_not_user_layer(
    echo: Echo, boundary: BoundaryVerifier, issuer: Issuer, user_key: UserKey
) -> None:
    """The middleware is not revocation-aware: the user layer behind it must refuse."""
    token = issuer.issue("alice", user_key)
    rotated = UserKey.generate()  # what a revocation does to alice's key
    async with client_for(BoundaryMiddleware(echo, boundary)) as client:
        response = await client.get("/api", headers=bearer(token))
    assert response.status_code == 200
    with pytest.raises(RevokedTokenError):
        UserVerifier.verify_claims(echo.scopes[0][CLAIMS_KEY], rotated)


async def test_excluded_paths_skip_the_check(echo: Echo, boundary: BoundaryVerifier) -> None:
    """Exact entries match one path; entries ending in / match a prefix."""
    app = BoundaryMiddleware(echo, boundary, exclude_paths=["/healthz", "/public/"])
    async with client_for(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/public/a/b")).status_code == 200
        assert (await client.get("/healthz/x")).status_code == 401
        assert (await client.get("/publicity")).status_code == 401
    assert all(CLAIMS_KEY not in scope for scope in echo.scopes)


async def test_on_missing_pass_forwards_anonymous_but_refuses_bad_tokens(
    echo: Echo, boundary: BoundaryVerifier
) -> None:
    """ "pass" lets anonymous requests through without claims; a bad token is still 401."""
    async with client_for(BoundaryMiddleware(echo, boundary, on_missing="pass")) as client:
        anonymous = await client.get("/")
        bad = await client.get("/", headers=bearer("x.y.z"))
    assert anonymous.status_code == 200
    assert CLAIMS_KEY not in echo.scopes[0]
    assert bad.status_code == 401


async def test_lifespan_scope_passes_through_untouched(
    echo: Echo, boundary: BoundaryVerifier
) -> None:
    """Non-HTTP scopes reach the app as they are (startup must not need a token)."""
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError("the middleware must not answer a lifespan scope")

    await BoundaryMiddleware(echo, boundary)(scope, receive, send)
    assert echo.scopes == [{"type": "lifespan", "asgi": {"version": "3.0"}}]


async def test_websocket_without_token_is_closed_before_accept(
    echo: Echo, boundary: BoundaryVerifier, issuer: Issuer, user_key: UserKey
) -> None:
    """A refused WebSocket handshake is closed with 1008; a valid one gets its claims."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    app = BoundaryMiddleware(echo, boundary)
    await app({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    header = (b"authorization", f"Bearer {issuer.issue('bob', user_key)}".encode())
    await app({"type": "websocket", "path": "/ws", "headers": [header]}, receive, send)
    assert echo.scopes[0][CLAIMS_KEY]["sub"] == "bob"


def test_duplicate_authorization_headers_are_refused() -> None:
    """Two Authorization headers are ambiguous: refused, not resolved by picking one."""
    with pytest.raises(MalformedTokenError):
        bearer_token(["Bearer a.b.c", "Bearer d.e.f"])


def test_bad_configuration_is_refused(echo: Echo, boundary: BoundaryVerifier) -> None:
    """Misuse fails at start-up, not on the first request."""
    with pytest.raises(ConfigurationError):
        BoundaryMiddleware(echo, boundary, realm='a"b')
    with pytest.raises(ConfigurationError):
        BoundaryMiddleware(echo, boundary, exclude_paths="/healthz")
    with pytest.raises(ConfigurationError):
        BoundaryMiddleware(echo, boundary, on_missing="allow")  # type: ignore[arg-type]


_FUZZ_BOUNDARY = BoundaryVerifier(
    SigningKey.generate("HS256"), ClaimsPolicy(issuer="https://i", audience="a")
)


def _status_for(app: BoundaryMiddleware, headers: list[tuple[bytes, bytes]]) -> int:
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return statuses[0]


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: ("Bearer " + t).encode("utf-8")),
        st.from_regex(rb"\A[Bb][Ee][Aa][Rr][Ee][Rr] +[A-Za-z0-9._~+/=-]{0,300}\Z"),
    ),
    extra=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=3),
)
def test_garbage_authorization_headers_never_crash(
    value: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    """Any header bytes get 200 or 401, never a 500 (an exception out of the middleware)."""
    app = BoundaryMiddleware(Echo(), _FUZZ_BOUNDARY, on_missing="pass")
    assert _status_for(app, [(b"authorization", value), *extra]) in {200, 401}


def test_sjti_and_sjti_asgi_import_no_web_framework() -> None:
    """The core and the ASGI middleware work without FastAPI, Starlette or Flask installed."""
    code = (
        "import sys, sjti, sjti.asgi; "
        "print(sorted({'fastapi', 'starlette', 'flask'} & set(sys.modules)))"
    )
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
