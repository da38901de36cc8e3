"""The attack pack against the Flask extension, through Flask's test client: the key looked
up by ``sub`` and the key taken from the app's own row both refuse every attack."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, g

from sjti import Claims, UserKey, UserVerifier
from sjti.cache import CachedKeys, KeyCache
from sjti.flask import Sjti
from sjti.stores import MemorySecretStore
from sjti.testing import AttackCase, Send, bearer


def flask_app(verifier: UserVerifier, store: MemorySecretStore) -> Flask:
    keys = CachedKeys(store, cache=KeyCache(trusted=True))
    store.add_listener(keys.cache.invalidate)
    app = Flask(__name__)
    sjti = Sjti(app, verifier=verifier, lookup=keys, realm="api")

    def key_from_row(claims: Claims) -> UserKey | None:
        return store.load(claims["sub"])  # stands for the app's own users query

    @app.get("/me")
    @sjti.require_user
    def me() -> dict[str, Any]:
        return {"sub": g.sjti_subject}

    @app.get("/profile")
    @sjti.require_user(user_key=key_from_row)
    def profile() -> dict[str, Any]:
        return {"sub": g.sjti_subject}

    return app


@pytest.fixture
def client(sjti_verifier: UserVerifier, sjti_store: MemorySecretStore) -> Any:
    return flask_app(sjti_verifier, sjti_store).test_client()


@pytest.mark.parametrize("path", ["/me", "/profile"])
def test_require_user_refuses_every_attack(sjti_attack: AttackCase, client: Any, path: str) -> None:
    """Both modes of @sjti.require_user, every case (ids: test_...[expired-/me], ...)."""
    send: Send = lambda token: client.get(path, headers=bearer(token))  # noqa: E731
    sjti_attack.check(send)
