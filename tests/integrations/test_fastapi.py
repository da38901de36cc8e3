"""FastAPI dependencies: the user layer looked up, or taken from the row the app loaded."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends(x)]
# objects, and x is a local of the function that builds the app.

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import Column, Engine, MetaData, RowMapping, String, Table, create_engine, event
from sqlalchemy import select as sa_select

from sjti import (
    BackendError,
    BoundaryVerifier,
    Claims,
    Issuer,
    Kek,
    KekRing,
    UserKey,
    UserVerifier,
)
from sjti.asgi import BoundaryMiddleware
from sjti.cache import CachedKeys, KeyCache
from sjti.fastapi import (
    BearerClaims,
    RequireUser,
    Verified,
    VerifiedRow,
    user_layer_from_row,
)
from sjti.stores import MemorySecretStore
from sjti.stores.sql import AppUsersTable, SqlSecretStore, secret_columns, upgrade
from sjti.testing import FrozenClock


class TestClient:
    """A sync client over httpx.ASGITransport (Starlette's TestClient warns about httpx)."""

    __test__ = False

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(call())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lookup_app(require_user: RequireUser) -> TestClient:
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[Verified, Depends(require_user)]) -> dict[str, Any]:
        return {"sub": user.subject, "jti": user.claims["jti"]}

    return TestClient(app)


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def keys(store: MemorySecretStore) -> CachedKeys:
    cached = CachedKeys(store, cache=KeyCache(trusted=True))
    store.add_listener(cached.cache.invalidate)
    return cached


def test_require_user_accepts_then_refuses_after_revocation(
    verifier: UserVerifier, issuer: Issuer, store: MemorySecretStore, keys: CachedKeys
) -> None:
    """The point of sjti: the same token stops working the moment the user is revoked."""
    client = lookup_app(RequireUser(verifier, keys, realm="api"))
    token = issuer.issue("alice", store.ensure("alice"))
    assert client.get("/me", headers=bearer(token)).json()["sub"] == "alice"
    store.revoke("alice")
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="revoked"'
    )
    assert response.json() == {"detail": {"error": "invalid_token", "error_description": "revoked"}}


def test_require_user_missing_expired_and_unknown_user(
    verifier: UserVerifier, issuer: Issuer, keys: CachedKeys, clock: FrozenClock
) -> None:
    """Each refusal carries its own RFC 6750 shape and stable code."""
    client = lookup_app(RequireUser(verifier, keys))
    missing = client.get("/me")
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    unknown = client.get("/me", headers=bearer(issuer.issue("ghost", UserKey.generate())))
    assert unknown.json()["detail"]["error_description"] == "revoked"
    token = issuer.issue("ghost", UserKey.generate(), ttl=10)
    clock.advance(11)
    expired = client.get("/me", headers=bearer(token))
    assert expired.json()["detail"]["error_description"] == "expired"


def test_require_user_fails_closed_with_503_when_the_store_is_down(
    verifier: UserVerifier, issuer: Issuer
) -> None:
    """A store outage must never let a token in: 503, not 200 and not 500."""

    async def down(user_id: str) -> UserKey:
        raise BackendError("secret store unavailable")

    client = lookup_app(RequireUser(verifier, down))
    response = client.get("/me", headers=bearer(issuer.issue("alice", UserKey.generate())))
    assert response.status_code == 503
    assert "www-authenticate" not in response.headers
    assert response.json()["detail"]["error"] == "temporarily_unavailable"


def test_require_user_takes_sync_and_async_lookups(verifier: UserVerifier, issuer: Issuer) -> None:
    """Plain functions (run in the thread pool) and coroutines both serve as lookups."""
    key = UserKey.generate()

    async def async_lookup(user_id: str) -> UserKey:
        return key

    token = issuer.issue("alice", key)
    for lookup in (lambda user_id: key, async_lookup):
        client = lookup_app(RequireUser(verifier, lookup))
        assert client.get("/me", headers=bearer(token)).status_code == 200


def test_require_user_reuses_the_middlewares_verification(
    hs_key: Any, policy: Any, clock: FrozenClock, issuer: Issuer, store: MemorySecretStore,
    keys: CachedKeys,
) -> None:  # fmt: skip
    """Behind the middleware with the same verifier, the signature is checked once."""
    calls: list[str] = []

    class Counting(BoundaryVerifier):
        __slots__ = ()

        def verify(self, token: str | bytes, *, now: int | None = None) -> Claims:
            calls.append("verify")
            return super().verify(token, now=now)

    boundary = Counting(hs_key, policy, clock=clock)
    app = FastAPI()
    require_user = RequireUser(UserVerifier(boundary), keys)

    @app.get("/me")
    async def me(user: Annotated[Verified, Depends(require_user)]) -> str:
        return user.subject

    app.add_middleware(BoundaryMiddleware, verifier=boundary)
    response = TestClient(app).get("/me", headers=bearer(issuer.issue("a", store.ensure("a"))))
    assert (response.status_code, calls) == (200, ["verify"])


def test_openapi_lists_the_bearer_scheme(verifier: UserVerifier, keys: CachedKeys) -> None:
    """/docs shows the bearer scheme so users can paste a token there."""
    client = lookup_app(RequireUser(verifier, keys))
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["sjti"] == {"type": "http", "scheme": "bearer"}


# -- row mode: the key comes from the users row the app loads anyway --------------------


class RowApp:
    """An app with its own users table (AppUsersTable layout) on a SQLite file."""

    def __init__(self, path: Path, boundary: BoundaryVerifier) -> None:
        self.engine: Engine = create_engine(f"sqlite:///{path}")
        metadata = MetaData()
        self.users = Table(
            "users", metadata, Column("id", String, primary_key=True), Column("name", String),
            *secret_columns(),
        )  # fmt: skip
        metadata.create_all(self.engine)
        self.layout = AppUsersTable(self.users)
        upgrade(self.engine, self.layout)
        self.ring = KekRing([Kek.generate("k1")])
        self.store = SqlSecretStore(self.engine, self.ring, self.layout)
        self.statements: list[str] = []
        bearer_claims = BearerClaims(boundary)
        users = self.users

        def load_user(
            token: Annotated[Verified, Depends(bearer_claims)],
        ) -> RowMapping | None:
            with self.engine.connect() as conn:
                query = sa_select(users).where(users.c.id == token.subject)
                return conn.execute(query).mappings().first()

        current_user = user_layer_from_row(load_user, self.ring, self.layout, bearer=bearer_claims)
        app = FastAPI()

        @app.get("/me")
        def me(user: Annotated[VerifiedRow[RowMapping], Depends(current_user)]) -> dict[str, Any]:
            return {"sub": user.subject, "name": user.row["name"]}

        self.client = TestClient(app)

    def add_user(self, user_id: str, name: str) -> UserKey:
        with self.engine.begin() as conn:
            conn.execute(self.users.insert().values(id=user_id, name=name))
        return self.store.ensure(user_id)

    @contextmanager
    def count_statements(self) -> Iterator[None]:
        def record(*args: Any) -> None:
            self.statements.append(args[2])

        event.listen(self.engine, "before_cursor_execute", record)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", record)


@pytest.fixture
def row_app(tmp_path: Path, boundary: BoundaryVerifier) -> RowApp:
    return RowApp(tmp_path / "app.db", boundary)


def test_row_mode_verifies_with_zero_extra_queries(row_app: RowApp, issuer: Issuer) -> None:
    """The user layer costs no query: the only statement is the app's own user select."""
    token = issuer.issue("u1", row_app.add_user("u1", "Alice"))
    with row_app.count_statements():
        response = row_app.client.get("/me", headers=bearer(token))
    assert response.json() == {"sub": "u1", "name": "Alice"}
    assert len(row_app.statements) == 1
    assert row_app.statements[0].lstrip().upper().startswith("SELECT")
    assert "FROM USERS" in row_app.statements[0].upper()


def test_row_mode_refuses_revoked_and_unknown_users(row_app: RowApp, issuer: Issuer) -> None:
    """A rotated secret in the row, or no row at all, refuses the token like a revocation."""
    token = issuer.issue("u1", row_app.add_user("u1", "Alice"))
    row_app.store.revoke("u1")
    revoked = row_app.client.get("/me", headers=bearer(token))
    assert revoked.status_code == 401
    assert revoked.json()["detail"]["error_description"] == "revoked"
    ghost = row_app.client.get("/me", headers=bearer(issuer.issue("nobody", UserKey.generate())))
    assert ghost.json()["detail"]["error_description"] == "revoked"


def test_row_mode_fails_closed_when_the_secret_does_not_open(
    tmp_path: Path, boundary: BoundaryVerifier, issuer: Issuer
) -> None:
    """A secret wrapped under a KEK this app lacks is a server fault: 503, never accepted."""
    row_app = RowApp(tmp_path / "app.db", boundary)
    other = SqlSecretStore(row_app.engine, KekRing([Kek.generate("k2")]), row_app.layout)
    with row_app.engine.begin() as conn:
        conn.execute(row_app.users.insert().values(id="u1", name="A"))
    token = issuer.issue("u1", other.ensure("u1"))
    assert row_app.client.get("/me", headers=bearer(token)).status_code == 503
