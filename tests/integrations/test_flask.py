"""The Flask extension: both layers on a view, key looked up or taken from the user row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g
from sqlalchemy import Column, MetaData, RowMapping, String, Table, create_engine
from sqlalchemy import select as sa_select

from sjti import BackendError, ConfigurationError, Issuer, Kek, KekRing, UserKey, UserVerifier
from sjti.cache import CachedKeys, KeyCache
from sjti.flask import Sjti, row_key
from sjti.stores import MemorySecretStore
from sjti.stores.sql import AppUsersTable, SqlSecretStore, secret_columns, upgrade
from sjti.testing import FrozenClock


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def app(verifier: UserVerifier, store: MemorySecretStore) -> Flask:
    keys = CachedKeys(store, cache=KeyCache(trusted=True))
    store.add_listener(keys.cache.invalidate)
    app = Flask(__name__)
    sjti = Sjti(verifier=verifier, lookup=keys, realm="api")
    sjti.init_app(app)

    @app.get("/me")
    @sjti.require_user
    def me() -> dict[str, Any]:
        return {"sub": g.sjti_subject, "jti": g.sjti_claims["jti"]}

    return app


def test_require_user_accepts_then_refuses_after_revocation(
    app: Flask, issuer: Issuer, store: MemorySecretStore, verifier: UserVerifier
) -> None:
    """A revoked user's token is refused on the next request, with the RFC 6750 shape."""
    client = app.test_client()
    token = issuer.issue("alice", store.ensure("alice"))
    jti = verifier.boundary.verify(token)["jti"]
    assert client.get("/me", headers=bearer(token)).json == {"sub": "alice", "jti": jti}
    store.revoke("alice")
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="revoked"'
    )
    assert response.json == {"error": "invalid_token", "error_description": "revoked"}


def test_missing_and_expired_tokens(app: Flask, issuer: Issuer, clock: FrozenClock) -> None:
    """No token: a bare challenge (RFC 6750 §3.1); an expired one names its code."""
    client = app.test_client()
    missing = client.get("/me")
    assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, 'Bearer realm="api"')
    token = issuer.issue("alice", UserKey.generate(), ttl=5)
    clock.advance(6)
    expired = client.get("/me", headers=bearer(token))
    assert expired.json == {"error": "invalid_token", "error_description": "expired"}


def test_backend_error_is_503(verifier: UserVerifier, issuer: Issuer) -> None:
    """A store outage fails closed: 503, never the view."""

    def down(user_id: str) -> UserKey:
        raise BackendError("secret store unavailable")

    app = Flask(__name__)
    sjti = Sjti(app, verifier=verifier, lookup=down)
    app.get("/me")(sjti.require_user(lambda: "reached"))
    response = app.test_client().get("/me", headers=bearer(issuer.issue("a", UserKey.generate())))
    assert response.status_code == 503
    assert "WWW-Authenticate" not in response.headers
    assert app.extensions["sjti"] is sjti


def test_require_user_without_any_key_source_is_a_configuration_error(
    verifier: UserVerifier,
) -> None:
    """Forgetting both the lookup and user_key fails when the view is declared."""
    with pytest.raises(ConfigurationError):
        Sjti(verifier=verifier).require_user(lambda: "x")


def test_row_mode_uses_the_row_the_view_needs(
    tmp_path: Path, verifier: UserVerifier, issuer: Issuer
) -> None:
    """user_key=row_key(...) verifies from the app's own row and hands it to the view."""
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    metadata = MetaData()
    users = Table(
        "users", metadata, Column("id", String, primary_key=True), Column("name", String),
        *secret_columns(),
    )  # fmt: skip
    metadata.create_all(engine)
    layout = AppUsersTable(users)
    upgrade(engine, layout)
    ring = KekRing([Kek.generate("k1")])
    store = SqlSecretStore(engine, ring, layout)
    with engine.begin() as conn:
        conn.execute(users.insert().values(id="u1", name="Alice"))

    def load_row(user_id: str) -> RowMapping | None:
        with engine.connect() as conn:
            return conn.execute(sa_select(users).where(users.c.id == user_id)).mappings().first()

    app = Flask(__name__)
    sjti = Sjti(app, verifier=verifier)

    @app.get("/profile")
    @sjti.require_user(user_key=row_key(load_row, ring, layout))
    def profile() -> dict[str, Any]:
        return {"name": g.sjti_user_row["name"]}

    client = app.test_client()
    token = issuer.issue("u1", store.ensure("u1"))
    assert client.get("/profile", headers=bearer(token)).json == {"name": "Alice"}
    store.revoke("u1")
    refused = client.get("/profile", headers=bearer(token))
    assert refused.json == {"error": "invalid_token", "error_description": "revoked"}
    ghost = client.get("/profile", headers=bearer(issuer.issue("nobody", UserKey.generate())))
    assert ghost.status_code == 401
