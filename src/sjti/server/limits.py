"""A size limit on every request body, before anything reads it (pure ASGI).

``Content-Length`` above the limit is refused at once; a body without one (chunked) is
read here as it arrives and refused as soon as it passes the limit (at most the limit is
ever held). Either way: 413 with a short JSON body, and the application never sees it.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import OAUTH_PATHS

__all__ = ["BodyLimit"]

_OAUTH_TOO_LARGE = b'{"error":"invalid_request","error_description":"request body too large"}'
_PROBLEM_TOO_LARGE = (
    b'{"type":"about:blank","title":"Content Too Large","status":413,"code":"too_large",'
    b'"detail":"request body too large"}'
)


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await _refuse(scope, send)
                return
            await self.app(scope, receive, send)  # the server holds it to its length
            return
        # No length (chunked): read it here, up to the limit, then hand it on. Frameworks
        # turn errors raised while they read a body into their own 400s.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], final: Message | None, rest: Receive | None = None) -> Receive:
    """A ``receive`` that gives the buffered body as one message, then defers to ``rest``."""
    pending: list[Message] = (
        [final] if final is not None else [{"type": "http.request", "body": b"".join(chunks)}]
    )

    async def receive() -> Message:
        if pending:
            return pending.pop()
        if rest is None:
            return {"type": "http.disconnect"}
        return await rest()

    return receive


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or ()
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Send) -> None:
    """413 in the shape of the endpoint's family (see :mod:`sjti.server.errors`)."""
    oauth = scope.get("path") in OAUTH_PATHS
    body = _OAUTH_TOO_LARGE if oauth else _PROBLEM_TOO_LARGE
    kind = b"application/json" if oauth else b"application/problem+json"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
