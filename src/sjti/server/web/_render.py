"""Templates, the security headers every page carries, and errors as pages.

Every page is rendered by :func:`render` from a Jinja2 template with autoescaping on (a
username, a user agent, a reason: all text, never markup) and goes out with
:data:`SECURITY_HEADERS`: a Content-Security-Policy that admits only this origin's
stylesheet and script (no inline script or style, no plugins, no framing, forms post only
here), ``X-Frame-Options: DENY`` for browsers without ``frame-ancestors``, ``nosniff``, no
referrer, and ``no-store`` (pages show sessions and audit rows).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import PROBLEM, is_oauth
from ._session import PENDING

__all__ = [
    "PAGE_PREFIXES",
    "SECURITY_HEADERS",
    "SecurityHeaders",
    "install_html_errors",
    "render",
    "wants_html",
]

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
PAGE_PREFIXES: Final = ("/account", "/admin", "/static/web/")

CSP: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


_env.filters["when"] = _when


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page, with the security headers (also set by the middleware for every path
    under :data:`PAGE_PREFIXES`; error pages elsewhere need them here)."""
    body = _env.get_template(template).render(request=request, **context)
    response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


def wants_html(request: Request) -> bool:
    """A browser navigating (``Accept: text/html``), outside the OAuth endpoints."""
    return "text/html" in request.headers.get("accept", "") and not is_oauth(request.url.path)


def error_page(request: Request, status: int, problem: Mapping[str, Any]) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": problem.get("title") or HTTPStatus(status).phrase,
            "code": problem.get("code") or "error",
            "detail": problem.get("detail"),
        },
        status=status,
    )


def _as_page(handler: Callable[[Request, Any], Any]) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response: Response = await answer if inspect.isawaitable(answer) else answer
        if not wants_html(request) or response.media_type != PROBLEM:
            return response
        problem = json.loads(bytes(response.body))
        page = error_page(request, response.status_code, problem)
        for name in ("www-authenticate", "retry-after"):
            if name in response.headers:
                page.headers[name] = response.headers[name]
        return page

    return handle


def install_html_errors(app: FastAPI) -> None:
    """Wrap every problem+json handler: a browser gets the same status and ``code`` as an
    HTML page (call after :func:`sjti.server.errors.install`)."""
    for kind, handler in list(app.exception_handlers.items()):
        app.exception_handlers[kind] = _as_page(handler)


class SecurityHeaders:
    """Pure ASGI: the page headers on every response under :data:`PAGE_PREFIXES`, and
    the session cookies a page queued (a rotated refresh token reaches the browser even
    when the page answers an error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path in ("/account", "/admin") or path.startswith(PAGE_PREFIXES)):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in _LOWER
                ]
                headers.extend((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())
                state = scope.get("state")
                if isinstance(state, dict):
                    headers.extend(state.get(PENDING) or ())
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_LOWER: Final = frozenset(k.lower() for k in SECURITY_HEADERS)
