"""The attack pack against sjti's FastAPI dependencies, wired the ways docs/integrations.md
shows: every wiring refuses every attack, and accepts the good tokens.

Clients: Starlette's TestClient (what FastAPI users have) and plain httpx over ASGI.
"""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends(x)]
# objects, and x is a local of the function that builds the app.

import warnings
from typing import Annotated

from fastapi import Depends, FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from sjti import UserKey, UserVerifier
from sjti.asgi import BoundaryMiddleware
from sjti.cache import CachedKeys, KeyCache
from sjti.fastapi import BearerClaims, RequireUser, Verified, VerifiedRow, user_layer_with_key
from sjti.stores import MemorySecretStore
from sjti.testing import AttackCase, bearer

from .test_fastapi import TestClient as HttpxClient

with warnings.catch_warnings():
    # starlette >= 1.0 asks for httpx2 on import; the client works the same with httpx
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


def cached_keys(store: MemorySecretStore) -> CachedKeys:
    """One process: a trusted cache, told of every revocation by the store."""
    keys = CachedKeys(store, cache=KeyCache(trusted=True))
    store.add_listener(keys.cache.invalidate)
    return keys


def lookup_app(verifier: UserVerifier, store: MemorySecretStore, *, middleware: bool) -> FastAPI:
    require_user = RequireUser(verifier, cached_keys(store), realm="api")
    app = FastAPI()
    if middleware:  # the dependency then reuses the middleware's claims
        app.add_middleware(BoundaryMiddleware, verifier=verifier.boundary, realm="api")

    @app.get("/me")
    async def me(user: Annotated[Verified, Depends(require_user)]) -> dict[str, str]:
        return {"sub": user.subject}

    return app


def row_app(verifier: UserVerifier, store: MemorySecretStore) -> FastAPI:
    """Mode 2: the key comes from the "row" the app loads by the boundary's subject."""
    bearer_claims = BearerClaims(verifier.boundary)

    def load_row(token: Annotated[Verified, Depends(bearer_claims)]) -> UserKey | None:
        return store.load(token.subject)

    current_user = user_layer_with_key(load_row, lambda row: row, bearer=bearer_claims)
    app = FastAPI()

    @app.get("/me")
    def me(user: Annotated[VerifiedRow[UserKey], Depends(current_user)]) -> dict[str, str]:
        return {"sub": user.subject}

    return app


def test_require_user_refuses_every_attack(
    sjti_attack: AttackCase, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """RequireUser with a cached lookup, through FastAPI's own TestClient."""
    client = TestClient(lookup_app(sjti_verifier, sjti_store, middleware=False))
    sjti_attack.check(lambda token: client.get("/me", headers=bearer(token)))


def test_require_user_behind_the_middleware_refuses_every_attack(
    sjti_attack: AttackCase, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """Reusing the middleware's claims must not open a path around either layer (httpx)."""
    client = HttpxClient(lookup_app(sjti_verifier, sjti_store, middleware=True))
    sjti_attack.check(lambda token: client.get("/me", headers=bearer(token)))


def test_the_user_layer_from_the_row_refuses_every_attack(
    sjti_attack: AttackCase, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """user_layer_with_key: no row (a deleted user) and a stale row key are both refused."""
    client = HttpxClient(row_app(sjti_verifier, sjti_store))
    sjti_attack.check(lambda token: client.get("/me", headers=bearer(token)))
