"""Web pages of the reference service: the account page and the admin console.

Server-rendered (Jinja2 templates next to their routes), one stylesheet, one small script
that only enhances forms that work without it, a strict Content-Security-Policy, CSRF
tokens bound to the session on every form, no framing. The pages are a client of the
service like any other: their session is an sjti access token and its refresh token in
``HttpOnly`` cookies, and every change goes through the API's own code paths.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from . import account, console
from ._render import STATIC, SecurityHeaders, install_html_errors
from ._session import SignInRequired, sign_in_redirect

__all__ = ["install"]


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)  # noqa: S101 - registered for this type
    return sign_in_redirect(exc.next_path)


def install(app: FastAPI) -> None:
    """Routes, static files, page headers, and HTML error pages for browsers (after
    :func:`sjti.server.errors.install`)."""
    app.include_router(account.router)
    app.include_router(console.router)
    app.mount("/static/web", StaticFiles(directory=STATIC), name="web-static")
    install_html_errors(app)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_middleware(SecurityHeaders)
