"""Every error the service answers, in one of two documented shapes.

* The OAuth endpoints (``/token``, ``/revoke``, ``/introspect``) answer RFC 6749 §5.2
  bodies, ``{"error": ..., "error_description": ...}``, and a malformed request there is
  ``400 invalid_request`` (never FastAPI's 422).
* Everything else answers RFC 9457 ``application/problem+json``:
  ``{"type": "about:blank", "title": <status phrase>, "status": N, "code": <stable code>,
  "detail": <safe text>}`` for 400/401/403/404/405/409/413/422/429/500/503 alike. ``code``
  is the core's stable code where there is one (``revoked``, ``expired``…) and a fixed
  word otherwise (``not_found``, ``conflict``, ``too_many_attempts``,
  ``temporarily_unavailable``…). 401s keep RFC 6750's ``WWW-Authenticate``.

Nothing echoes the request's input (it may hold a password), and no response carries a
statement, a parameter, a secret or a traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import BackendError, ConfigurationError, SecretError, TokenError
from ..stores.base import UnknownUserError
from .auth import bearer_challenge

__all__ = ["OAUTH_PATHS", "install", "is_oauth", "oauth_error", "problem"]

logger = logging.getLogger("sjti.server")

OAUTH_PATHS: Final = frozenset({"/token", "/revoke", "/introspect"})
PROBLEM: Final = "application/problem+json"
_WORDS: Final = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "too_many_attempts",
    500: "internal_error",
    503: "temporarily_unavailable",
}
_RETRY: Final = {"Retry-After": "1"}


def is_oauth(path: str) -> bool:
    return path in OAUTH_PATHS


def problem(
    status: int,
    code: str | None = None,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 problem with the stable ``code`` member."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code or _WORDS.get(status, f"http_{status}"),
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def oauth_error(
    status: int, error: str, description: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An RFC 6749 §5.2 error body."""
    body = {"error": error}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status_code=status, headers=headers)


def _answer(
    request: Request,
    status: int,
    code: str | None,
    detail: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if is_oauth(request.url.path):
        return oauth_error(status, code or _WORDS.get(status, "invalid_request"), detail, headers)
    return problem(status, code, detail, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type
    headers = dict(exc.headers or {})
    if isinstance(exc.detail, dict):
        detail: dict[str, Any] = exc.detail
        if is_oauth(request.url.path):
            return JSONResponse(detail, status_code=exc.status_code, headers=headers)
        code = detail.get("code") or detail.get("error")
        return problem(exc.status_code, code, detail.get("error_description"), headers)
    text = str(exc.detail) if exc.detail else None
    return _answer(request, exc.status_code, None, text, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI would echo the offending input (passwords included): only where and why.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    where = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    if is_oauth(request.url.path):
        first = where[0] if where else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in (first["loc"] or ())[1:]) or "request"
        return oauth_error(400, "invalid_request", f"{field}: {first['msg']}")
    return problem(422, "invalid_request", "the request does not match the schema", errors=where)


async def _token_error(request: Request, exc: Exception) -> JSONResponse:
    code = exc.code if isinstance(exc, TokenError) else "invalid_token"
    challenge = {"WWW-Authenticate": bearer_challenge("invalid_token", code)}
    if is_oauth(request.url.path):
        return oauth_error(401, "invalid_token", code, challenge)
    return problem(401, code, "invalid token", challenge)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Never the statement or its parameters (they can hold wrapped secrets): the type.
    if isinstance(exc, DataError):  # a value the database refuses (a NUL byte, say)
        return _answer(request, 400, "invalid_request", "value not accepted")
    if not isinstance(exc, SecretError):  # that one logged its KEK id where it happened
        logger.warning("backend unavailable: %s", type(exc).__name__)
    return _answer(request, 503, "temporarily_unavailable", None, dict(_RETRY))


async def _bad_configuration(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 422 if not is_oauth(request.url.path) else 400, None, str(exc))


async def _unknown_user(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 404, "not_found", "no such user")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return _answer(request, 500, "internal_error", None)


def install(app: FastAPI) -> None:
    """Register every handler: no known failure becomes a bare 500."""
    handlers: tuple[tuple[type[Exception] | int, Any], ...] = (
        (StarletteHTTPException, _http_error),
        (RequestValidationError, _validation_error),
        (TokenError, _token_error),
        (BackendError, _unavailable),
        (SecretError, _unavailable),
        (DBAPIError, _unavailable),
        (PoolTimeoutError, _unavailable),
        (ConfigurationError, _bad_configuration),
        (UnknownUserError, _unknown_user),
        (Exception, _unexpected),
    )
    for kind, handler in handlers:
        app.add_exception_handler(kind, handler)
