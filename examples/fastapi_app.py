"""FastAPI + sjti: the boundary middleware in front, both layers on the routes that need them.

Run:  PORT=8000 python examples/fastapi_app.py
Try:  TOKEN=$(curl -s -X POST 'localhost:8000/login?user=alice' | jq -r .access_token)
      curl -H "Authorization: Bearer $TOKEN" localhost:8000/me           # 200
      curl -X POST -H "Authorization: Bearer $TOKEN" localhost:8000/logout
      curl -i -H "Authorization: Bearer $TOKEN" localhost:8000/me        # 401 "revoked"

A demo: /login takes no password; with the demo's defaults the keys live in memory (gone
on restart). Its tests build it from sjti.testing's fixtures (``create_app(sjti_auth)``)
and run the attack pack against /me.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, and
# `Depends(require_user)` names a variable of create_app, not of the module.
import os
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request, Response

import sjti
from sjti.asgi import BoundaryMiddleware, claims_from_scope
from sjti.fastapi import RequireUser, Verified

# The demo's defaults; sjti.toml and SJTI_* variables override them (e.g.
# SJTI_DATABASE_URL=sqlite:///demo.db keeps users' keys across restarts).
DEMO = {"SJTI_DATABASE_URL": "memory://", "SJTI_ISSUER": "http://127.0.0.1/example",
        "SJTI_AUDIENCE": "example-api", "SJTI_ACCESS_TTL": "300"}  # fmt: skip


def create_app(auth: sjti.Auth) -> FastAPI:
    require_user = RequireUser(auth.verifier, auth.user_keys, realm="example")
    app = FastAPI(title="sjti FastAPI example")
    # Boundary layer for every request except these paths (same verifier object as
    # RequireUser's, so the dependency reuses the middleware's claims).
    app.add_middleware(
        BoundaryMiddleware,
        verifier=auth.boundary,
        exclude_paths=["/login", "/healthz", "/docs", "/openapi.json"],
        realm="example",
    )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/login")
    def login(user: str) -> dict[str, str]:
        """Demo only: a real service checks a password first."""
        return {"access_token": auth.issue(user), "token_type": "bearer"}

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
        auth.revoke(user.subject, actor=user.subject, reason="logout")
        return Response(status_code=204)

    return app


app = create_app(sjti.configure(sjti.Settings.load(environ={**DEMO, **os.environ})))

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
