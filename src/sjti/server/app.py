"""``create_app(settings) -> FastAPI``: the reference auth service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import BackendError, ConfigurationError, SecretError, TokenError
from ..stores.base import UnknownUserError
from .auth import bearer_challenge
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


def _install_error_handlers(app: FastAPI) -> None:
    """Library errors a route did not handle: never a 500 for a known failure."""

    async def token_error(_: Request, exc: Exception) -> JSONResponse:
        code = exc.code if isinstance(exc, TokenError) else "invalid_token"
        return JSONResponse(
            {"error": "invalid_token", "error_description": code},
            status_code=401,
            headers={"WWW-Authenticate": bearer_challenge("invalid_token", code)},
        )

    async def backend_error(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("backend unavailable: %s", type(exc).__name__)
        return JSONResponse(
            {"error": "temporarily_unavailable"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def bad_request(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid_request", "error_description": str(exc)},
            status_code=422,
        )

    async def unknown_user(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "not_found"}, status_code=404)

    async def http_error(request: Request, exc: Exception) -> Response:
        # OAuth 2.0 (RFC 6749 §5.2) and RFC 6750 put "error" at the top of the body.
        if (
            isinstance(exc, StarletteHTTPException)
            and isinstance(exc.detail, dict)
            and "error" in exc.detail
        ):
            return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)  # type: ignore[arg-type]

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        # FastAPI echoes the offending input (passwords included): keep only where and why.
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        detail = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse({"detail": detail}, status_code=422)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # Never the statement or its parameters (they can hold wrapped secrets): the type.
        if isinstance(exc, DataError):  # a value the database refuses (a NUL byte, say)
            return JSONResponse(
                {"error": "invalid_request", "error_description": "value not accepted"},
                status_code=400,
            )
        return await backend_error(request, exc)

    async def secret_error(request: Request, exc: Exception) -> JSONResponse:
        # The KEK ring cannot open a stored key (KEK dropped or changed): an operator's
        # problem, never the client's, never a 500. Fails closed: nothing is accepted.
        # (The request path logged which KEK id; /readyz now says so too.)
        return JSONResponse(
            {"error": "temporarily_unavailable"}, status_code=503, headers={"Retry-After": "1"}
        )

    app.add_exception_handler(SecretError, secret_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeoutError, database_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(TokenError, token_error)
    app.add_exception_handler(BackendError, backend_error)
    app.add_exception_handler(ConfigurationError, bad_request)
    app.add_exception_handler(UnknownUserError, unknown_user)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service: read (or create) the key file, migrate, wire cache and bus."""
    settings = settings if settings is not None else Settings()
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
    for module in (auth, me, admin, oauth, wellknown, ops):
        app.include_router(module.router)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory (``--factory``): settings from ``SJTI_*`` variables."""
    return create_app(Settings())
