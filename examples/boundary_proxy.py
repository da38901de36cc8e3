"""A boundary service that holds ONLY a JWKS: it drops forged, expired and foreign tokens.

It verifies signature and claims (no database, no user keys), then forwards the request
to ``SJTI_UPSTREAM`` (which checks the user layer, e.g. internal_service.py), or, without
an upstream, answers with the verified claims. It is not revocation-aware on its own: a
revoked token passes here and is refused by the upstream.

Run:  SJTI_JWKS_FILE=jwks.json PORT=8000 python examples/boundary_proxy.py
      (or SJTI_JWKS_URL=http://127.0.0.1:8001/.well-known/jwks.json; SJTI_ISSUER,
      SJTI_AUDIENCE must match the issuer's; SJTI_UPSTREAM=http://127.0.0.1:8001)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sjti import BoundaryVerifier, ClaimsPolicy, KeySet, Settings
from sjti.asgi import BoundaryMiddleware, claims_from_scope

# issuer/audience/leeway from the one settings model, with defaults that match
# internal_service.py's. The proxy needs no store, no KEK and no private key.
DEMO = {"SJTI_ISSUER": "http://127.0.0.1/internal", "SJTI_AUDIENCE": "internal-api"}
settings = Settings.load(environ={**DEMO, **os.environ})
UPSTREAM = os.environ.get("SJTI_UPSTREAM")
# Hop-by-hop headers (RFC 9110 §7.6.1) and those httpx sets itself are not forwarded.
DROPPED = {"host", "content-length", "connection", "keep-alive", "te", "upgrade",
           "transfer-encoding", "proxy-authorization"}  # fmt: skip


def load_jwks() -> KeySet:
    """The public keys, from a file or fetched once from a URL at start."""
    if "SJTI_JWKS_FILE" in os.environ:
        return KeySet.from_jwks(Path(os.environ["SJTI_JWKS_FILE"]).read_bytes())
    return KeySet.from_jwks(httpx.get(os.environ["SJTI_JWKS_URL"], timeout=10).content)


policy = ClaimsPolicy(issuer=settings.issuer, audience=settings.audience, leeway=settings.leeway)
boundary = BoundaryVerifier(load_jwks(), policy)
client: httpx.AsyncClient | None = None


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global client
    async with httpx.AsyncClient(base_url=UPSTREAM or "http://unused", timeout=10) as client:
        yield


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def forward(request: Request) -> Response:
    """Only verified requests get here (the middleware refused the others with 401)."""
    if UPSTREAM is None or client is None:
        return JSONResponse({"claims": claims_from_scope(request.scope), "layer": "boundary"})
    headers = {k: v for k, v in request.headers.items() if k not in DROPPED}
    upstream = await client.request(
        request.method,
        request.url.path,
        params=request.url.query,
        headers=headers,
        content=await request.body(),
    )
    kept = {k: v for k, v in upstream.headers.items() if k in ("content-type", "www-authenticate")}
    return Response(upstream.content, status_code=upstream.status_code, headers=kept)


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ],
    middleware=[Middleware(BoundaryMiddleware, verifier=boundary, exclude_paths=["/healthz"])],
    lifespan=lifespan,
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
