"""``create_app(settings) -> FastAPI``: the reference auth service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from .. import __version__
from . import errors, openapi, web
from .limits import BodyLimit
from .routes import admin, auth, me, oauth, ops, wellknown
from .services import Services
from .settings import Settings

__all__ = ["app_from_env", "create_app"]

logger = logging.getLogger("sjti.server")

DESCRIPTION = """JWTs revocable per user, instantly, without a revocation list.

Access tokens are EdDSA JWTs (by default) carrying `sjti`, a MAC under the user's key;
`/me` checks both layers. Refresh tokens are opaque, rotated on every use, and reuse of a
rotated one revokes its session. Device logout (`DELETE /sessions/{id}`) ends that
device's refresh tokens at once; its access tokens stay valid until they expire unless the
service runs with `SJTI_SESSION_GRANULARITY=session`. `POST /logout` ends everything now.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service: read (or create) the key file, migrate, wire cache and bus."""
    settings = settings if settings is not None else Settings.load()
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not await anyio.to_thread.run_sync(services.wait_ready):
            logger.warning("invalidation bus not connected yet: the key cache is bypassed")
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(services.close)

    app = FastAPI(
        title="sjti auth service", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.services = services
    # Routes are matched in order, each tried in turn: the probes and /me, the paths hit
    # on every request, go first (no path is shared between routers, so order changes
    # nothing else; /healthz behind the rest cost ~18 failed matches, a third of its CPU).
    for module in (ops, me, auth, oauth, wellknown, admin):
        app.include_router(module.router)
    errors.install(app)
    web.install(app)  # /account and /admin pages (after errors: HTML error pages)
    openapi.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory (``--factory``): settings from ``SJTI_*`` variables."""
    return create_app(Settings.load())
