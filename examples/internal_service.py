"""An internal service that holds the keys and checks the user layer (pair: boundary_proxy.py).

It issues tokens, publishes its public keys at /.well-known/jwks.json and checks both
layers on /me, so a revoked token is refused here even though the boundary proxy, which
holds only the JWKS, still lets it through until it expires.

Run:  PORT=8001 python examples/internal_service.py
      curl localhost:8001/.well-known/jwks.json > jwks.json
      SJTI_JWKS_FILE=jwks.json SJTI_UPSTREAM=http://127.0.0.1:8001 PORT=8000 \
          python examples/boundary_proxy.py
A demo: /login takes no password and the keys live in memory (gone on restart).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Response

import sjti
from sjti.fastapi import RequireUser, Verified

# The one settings model (sjti.toml, SJTI_* variables), with this demo's defaults: keys in
# memory. EdDSA (the default alg): the JWKS holds only the public key, so the proxy can
# verify but never sign.
DEMO = {"SJTI_DATABASE_URL": "memory://", "SJTI_ISSUER": "http://127.0.0.1/internal",
        "SJTI_AUDIENCE": "internal-api", "SJTI_ACCESS_TTL": "300"}  # fmt: skip
auth = sjti.configure(sjti.Settings.load(environ={**DEMO, **os.environ}))
require_user = RequireUser(auth.verifier, auth.user_keys, realm="internal")

app = FastAPI(title="sjti internal service example")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/.well-known/jwks.json")
def jwks(response: Response) -> dict[str, Any]:
    response.headers["cache-control"] = "public, max-age=300"
    return auth.keys.to_jwks()


@app.post("/login")
def login(user: str) -> dict[str, str]:
    """Demo only: a real service checks a password first."""
    return {"access_token": auth.issue(user), "token_type": "bearer"}


@app.get("/me")
def me(user: Annotated[Verified, Depends(require_user)]) -> dict[str, Any]:
    return {"sub": user.subject, "layer": "user"}


@app.post("/logout", status_code=204)
def logout(user: Annotated[Verified, Depends(require_user)]) -> Response:
    auth.revoke(user.subject, actor=user.subject, reason="logout")
    return Response(status_code=204)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
