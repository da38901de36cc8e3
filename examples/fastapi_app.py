"""FastAPI + sjti: the boundary middleware in front, both layers on the routes that need them.

Run:  PORT=8000 python examples/fastapi_app.py
Try:  TOKEN=$(curl -s -X POST 'localhost:8000/login?user=alice' | jq -r .access_token)
      curl -H "Authorization: Bearer $TOKEN" localhost:8000/me           # 200
      curl -X POST -H "Authorization: Bearer $TOKEN" localhost:8000/logout
      curl -i -H "Authorization: Bearer $TOKEN" localhost:8000/me        # 401 "revoked"

A demo: /login takes no password and the keys live in memory (gone on restart).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request, Response

from sjti import BoundaryVerifier, ClaimsPolicy, Issuer, SigningKey, UserVerifier
from sjti.asgi import BoundaryMiddleware, claims_from_scope
from sjti.cache import CachedKeys, KeyCache
from sjti.fastapi import RequireUser, Verified
from sjti.stores import MemorySecretStore

ISSUER, AUDIENCE = "http://127.0.0.1/example", "example-api"

# Application keys: sign and verify access tokens (EdDSA, so a JWKS could be published).
signing_key = SigningKey.generate("EdDSA")
issuer = Issuer(signing_key, issuer=ISSUER, audience=AUDIENCE, ttl=300)
boundary = BoundaryVerifier(signing_key, ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE))

# User keys: one secret per user; revoking a user rotates it. One process, so the cache
# is trusted and the store's listener drops revoked users from it directly.
store = MemorySecretStore()
keys = CachedKeys(store, cache=KeyCache(trusted=True))
store.add_listener(keys.cache.invalidate)
require_user = RequireUser(UserVerifier(boundary), keys, realm="example")

app = FastAPI(title="sjti FastAPI example")
# Boundary layer for every request except these paths (same verifier object as
# RequireUser's, so the dependency reuses the middleware's claims).
app.add_middleware(
    BoundaryMiddleware,
    verifier=boundary,
    exclude_paths=["/login", "/healthz", "/docs", "/openapi.json"],
    realm="example",
)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/login")
def login(user: str) -> dict[str, str]:
    """Demo only: a real service checks a password first."""
    token = issuer.issue(user, store.ensure(user))
    return {"access_token": token, "token_type": "bearer"}


@app.get("/hello")
def hello(request: Request) -> dict[str, Any]:
    """Boundary layer only (the middleware): a revoked token still gets in here."""
    claims = claims_from_scope(request.scope) or {}
    return {"hello": claims.get("sub")}


@app.get("/me")
def me(user: Annotated[Verified, Depends(require_user)]) -> dict[str, Any]:
    """Both layers: refused as soon as the user is revoked."""
    return {"sub": user.subject, "claims": user.claims}


@app.post("/logout", status_code=204)
def logout(user: Annotated[Verified, Depends(require_user)]) -> Response:
    """Revoke every token of the caller (all devices), instantly."""
    store.revoke(user.subject, actor=user.subject, reason="logout")
    return Response(status_code=204)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
