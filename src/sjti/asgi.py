"""Pure ASGI middleware for the boundary layer, and the RFC 6750 pieces the adapters share.

>>> app = BoundaryMiddleware(app, BoundaryVerifier(jwks_keys, policy), realm="api")
...                                                              # doctest: +SKIP

:class:`BoundaryMiddleware` reads ``Authorization: Bearer <token>``, verifies it with a
:class:`~sjti.BoundaryVerifier` (signature, header, claims: no database, no I/O) and puts
the claims in ``scope["sjti.claims"]`` and the token in ``scope["sjti.token"]``. It is
**not revocation-aware**: a revoked token passes here until it expires. Check the user
layer behind it (:mod:`sjti.fastapi`, :mod:`sjti.flask`, :class:`~sjti.UserVerifier`).

Refusals follow RFC 6750 §3: ``401`` with ``WWW-Authenticate: Bearer realm="api",
error="invalid_token", error_description="expired"`` (the description is the stable
:attr:`~sjti.TokenError.code`) and the JSON body ``{"error": "invalid_token",
"error_description": "expired"}``; a request without a bearer token gets ``401`` with
``WWW-Authenticate: Bearer realm="api"`` and no error attribute (§3.1).

This module imports no web framework; :mod:`sjti.fastapi` and :mod:`sjti.flask` reuse
:func:`bearer_token` and :class:`Rejection`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from ._core.claims import Claims
from .errors import ConfigurationError, MalformedTokenError, TokenError
from .tokens import BoundaryVerifier

__all__ = [
    "CLAIMS_KEY",
    "TOKEN_KEY",
    "VERIFIER_KEY",
    "ASGIApp",
    "BoundaryMiddleware",
    "Message",
    "Receive",
    "Rejection",
    "Scope",
    "Send",
    "bearer_token",
    "check_realm",
    "claims_from_scope",
    "token_from_scope",
]

# The ASGI callable types, as Starlette spells them (so its add_middleware accepts ours).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLAIMS_KEY: Final = "sjti.claims"
"""``scope`` key of the boundary-verified claims (a dict)."""
TOKEN_KEY: Final = "sjti.token"  # noqa: S105 - a scope key, not a password
"""``scope`` key of the raw bearer token (a str)."""
VERIFIER_KEY: Final = "sjti.verifier"
"""``scope`` key of the :class:`~sjti.BoundaryVerifier` that verified the token, so a
dependency using the same verifier object does not verify twice."""

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A realm goes inside a quoted-string: printable ASCII without '"' and '\'.
_REALM: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,200}")
_WEBSOCKET_POLICY_VIOLATION: Final = 1008


def check_realm(realm: str | None) -> str | None:
    """``realm`` if it can be sent unescaped in a quoted-string, else ConfigurationError."""
    if realm is not None and (not isinstance(realm, str) or not _REALM.fullmatch(realm)):
        raise ConfigurationError("realm must be 1-200 printable ASCII characters without quotes")
    return realm


def bearer_token(values: Sequence[str]) -> str | None:
    """The bearer token from the ``Authorization`` header values of one request.

    ``None`` when there is no header or it uses another scheme (RFC 6750 §3.1: no error
    code then). :class:`~sjti.MalformedTokenError` for ``Bearer`` without a valid
    b64token, or for more than one ``Authorization`` header (ambiguous, refused).
    """
    if not values:
        return None
    if len(values) > 1:
        raise MalformedTokenError("more than one Authorization header")
    scheme, _, rest = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = rest.strip(" \t")
    if not _B64TOKEN.fullmatch(token):
        raise MalformedTokenError()
    return token


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refusal as RFC 6750 shapes it: status, ``WWW-Authenticate`` and a JSON body.

    Build it with :meth:`missing`, :meth:`invalid` or :meth:`unavailable`; the adapters
    turn it into their framework's response.
    """

    status: int
    error: str | None
    description: str | None
    realm: str | None = None

    @classmethod
    def missing(cls, realm: str | None = None) -> Rejection:
        """No bearer token at all: 401 and a challenge without an error (§3.1)."""
        return cls(401, None, None, realm)

    @classmethod
    def invalid(cls, exc: TokenError, realm: str | None = None) -> Rejection:
        """A refused token: 401 ``invalid_token`` with the error's stable code."""
        return cls(401, "invalid_token", exc.code, realm)

    @classmethod
    def unavailable(cls) -> Rejection:
        """The user's key could not be read (store down): 503, fail closed."""
        return cls(503, "temporarily_unavailable", "backend_unavailable")

    @property
    def www_authenticate(self) -> str | None:
        """The ``WWW-Authenticate`` value (``None`` for a 503, which challenges nobody)."""
        if self.status != 401:
            return None
        params = []
        if self.realm is not None:
            params.append(f'realm="{self.realm}"')
        if self.error is not None:
            params.append(f'error="{self.error}"')
        if self.description is not None:
            params.append(f'error_description="{self.description}"')
        return "Bearer " + ", ".join(params) if params else "Bearer"

    @property
    def body(self) -> dict[str, str]:
        """The JSON body: ``error`` and ``error_description``; a missing token says so."""
        if self.error is None:
            return {"error": "missing_token"}
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return body

    @property
    def headers(self) -> dict[str, str]:
        """The response headers besides the body's content type."""
        headers = {"cache-control": "no-store"}
        challenge = self.www_authenticate
        if challenge is not None:
            headers["www-authenticate"] = challenge
        return headers


def claims_from_scope(scope: Scope) -> Claims | None:
    """The claims :class:`BoundaryMiddleware` verified for this request, if any."""
    claims = scope.get(CLAIMS_KEY)
    return claims if isinstance(claims, dict) else None


def token_from_scope(scope: Scope) -> str | None:
    """The bearer token :class:`BoundaryMiddleware` verified for this request, if any."""
    token = scope.get(TOKEN_KEY)
    return token if isinstance(token, str) else None


def _header_values(scope: Scope, name: bytes) -> list[str]:
    # ASGI header names are lower-case bytes; latin-1 maps every byte, so no decode error.
    return [
        value.decode("latin-1")
        for key, value in scope.get("headers", ())
        if isinstance(key, bytes) and key.lower() == name and isinstance(value, bytes)
    ]


class BoundaryMiddleware:
    """Verify the bearer token of every HTTP (and WebSocket) request; the boundary layer.

    ``exclude_paths``: paths served without any check (exact match, or a prefix when the
    entry ends with ``/``). ``realm``: sent in every challenge. ``on_missing``:
    ``"reject"`` (default) answers 401 to a request without a bearer token; ``"pass"``
    forwards it without claims (a *bad* token is still refused). Other scope types
    (``lifespan``) pass through untouched. A refused WebSocket handshake is closed with
    code 1008 before it is accepted (the server answers 403).
    """

    __slots__ = ("_exact", "_pass_missing", "_prefixes", "app", "realm", "verifier")

    def __init__(
        self,
        app: ASGIApp,
        verifier: BoundaryVerifier,
        *,
        exclude_paths: Iterable[str] = (),
        realm: str | None = None,
        on_missing: Literal["reject", "pass"] = "reject",
    ) -> None:
        if not isinstance(verifier, BoundaryVerifier):
            raise ConfigurationError("BoundaryMiddleware needs a BoundaryVerifier")
        if on_missing not in ("reject", "pass"):
            raise ConfigurationError('on_missing must be "reject" or "pass"')
        if isinstance(exclude_paths, str):
            raise ConfigurationError("exclude_paths is a collection of paths, not one string")
        paths = list(exclude_paths)
        if not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise ConfigurationError("exclude_paths entries are paths starting with '/'")
        self.app = app
        self.verifier = verifier
        self.realm = check_realm(realm)
        self._pass_missing = on_missing == "pass"
        self._exact = frozenset(p for p in paths if not p.endswith("/"))
        self._prefixes = tuple(p for p in paths if p.endswith("/"))

    def _excluded(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        return path in self._exact or path.startswith(self._prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if (kind != "http" and kind != "websocket") or self._excluded(scope.get("path")):
            await self.app(scope, receive, send)
            return
        rejection: Rejection | None = None
        try:
            token = bearer_token(_header_values(scope, b"authorization"))
            if token is not None:
                claims = self.verifier.verify(token)
                scope[CLAIMS_KEY] = claims
                scope[TOKEN_KEY] = token
                scope[VERIFIER_KEY] = self.verifier
            elif not self._pass_missing:
                rejection = Rejection.missing(self.realm)
        except TokenError as exc:
            rejection = Rejection.invalid(exc, self.realm)
        if rejection is None:
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": _WEBSOCKET_POLICY_VIOLATION})
        else:
            await _send_rejection(rejection, send)


async def _send_rejection(rejection: Rejection, send: Send) -> None:
    body = orjson.dumps(rejection.body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in rejection.headers.items()]
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
