"""Django REST framework authentication: both layers, RFC 6750 answers, claims on
``request.auth``.

``SjtiAuthentication`` (the default to use)
    Boundary layer (signature, ``alg`` pinned by the key, ``typ``, ``iss``, ``aud``,
    ``exp``, ``nbf``), then the user **with** the key in one query (the user row, or a
    join with the one-to-one key row), then ``sjti`` recomputed with that key. One query
    per request, the user load DRF makes anyway: zero extra for revocation, and as
    current as the database (no cache to trust).

``SjtiStatelessAuthentication``
    No user load: ``request.user`` is a :class:`TokenUser` built from the claims, the key
    comes through the per-process cache (:class:`sjti.cache.CachedKeys`), invalidated by
    the revocation bus (Redis, PostgreSQL NOTIFY) and bypassed while no bus proves it
    current. A hit costs no query, a miss one.

During a migration window (``SJTI["LEGACY"]``) a token without ``sjti`` that passes the
application's old verification is accepted unless its user was revoked after its ``iat``
(:class:`sjti.LegacyTokens`); after the cutoff it is refused as ``legacy_window_closed``.

Refusals are 401 with ``WWW-Authenticate: Bearer realm="...", error="invalid_token",
error_description="<code>"`` and a body simplejwt clients understand
(``{"detail": ..., "code": "token_not_valid", "error": "invalid_token",
"error_description": "<code>"}``); a store or key failure is 503, never a 500 nor a pass.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import DatabaseError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .._core.binding import devices_record
from .._core.claims import Claims
from ..cache import CachedKeys
from ..errors import BackendError, MalformedTokenError, RevokedTokenError, SecretError, TokenError
from ..legacy import is_legacy
from ..stores._devices import parse_column
from ..stores._revocation import open_secret
from ..tokens import UserVerifier
from . import keys
from ._runtime import Runtime, runtime

__all__ = [
    "ServiceUnavailable",
    "SjtiAuthentication",
    "SjtiStatelessAuthentication",
    "TokenRefused",
    "TokenUser",
    "bearer_token",
]

_ERROR_ATTR = "_sjti_error_code"


class TokenRefused(exceptions.AuthenticationFailed):
    """401: the token was refused by one of the layers; ``code`` says which check."""

    def __init__(self, code: str) -> None:
        super().__init__(
            {
                "detail": "Given token not valid",
                "code": "token_not_valid",
                "error": "invalid_token",
                "error_description": code,
            }
        )
        self.sjti_code = code


class ServiceUnavailable(exceptions.APIException):
    """503: the key store is down or a key does not open: fail closed, retry later."""

    status_code = 503
    default_detail = "temporarily unavailable"
    default_code = "temporarily_unavailable"

    def __init__(self) -> None:
        super().__init__(
            {"error": "temporarily_unavailable", "error_description": "backend_unavailable"}
        )


def bearer_token(request: Request | Any) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` for no header or another
    scheme (then another authentication class may try)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not isinstance(header, str):
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token or " " in token:
        raise TokenRefused("malformed")
    return token


class TokenUser:
    """The user a verified token names, without a database load (stateless class)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, claims: Claims) -> None:
        self.claims = claims
        self.pk = self.id = str(claims["sub"])

    def __str__(self) -> str:
        return f"TokenUser {self.pk}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenUser) and other.pk == self.pk

    def __hash__(self) -> int:
        return hash(self.pk)


class _Base(BaseAuthentication):
    """What both classes share: the header, the boundary layer, the refusals."""

    def authenticate_header(self, request: Request) -> str:
        realm = runtime().options.realm
        parts = [f'realm="{realm}"'] if realm else []
        code = getattr(request._request, _ERROR_ATTR, None)
        if code is not None:
            parts += ['error="invalid_token"', f'error_description="{code}"']
        return "Bearer " + ", ".join(parts) if parts else "Bearer"

    @staticmethod
    def _refused(request: Request, exc: TokenError) -> TokenRefused:
        setattr(request._request, _ERROR_ATTR, exc.code)
        return TokenRefused(exc.code)

    def authenticate(self, request: Request) -> tuple[Any, Claims] | None:
        token = bearer_token(request)
        if token is None:
            return None
        rt = runtime()
        claims = self._boundary(request, token, rt)
        if claims is None:
            return self._legacy(request, token, rt)
        try:
            user = self._user_layer(claims)
        except TokenError as exc:
            raise self._refused(request, exc) from None
        except (SecretError, BackendError, DatabaseError):
            raise ServiceUnavailable() from None
        return user, claims

    def _user_layer(self, claims: Claims) -> Any:
        """The user layer: the authenticated user, or a :class:`TokenError`."""
        raise NotImplementedError

    def _boundary(self, request: Request, token: str, rt: Runtime) -> Claims | None:
        """The boundary-verified claims; ``None`` if the token is a legacy one that the
        migration window must judge instead."""
        try:
            return rt.auth.boundary.verify(token)
        except TokenError as exc:
            if rt.options.legacy is not None and is_legacy(token):
                return None
            raise self._refused(request, exc) from None

    def _legacy(self, request: Request, token: str, rt: Runtime) -> tuple[Any, Claims]:
        policy = rt.options.legacy
        if policy is None:  # pragma: no cover - callers check first
            raise self._refused(request, MalformedTokenError())
        try:
            claims = policy.open(token)
            user = keys.load_user(policy.user_id(claims))
            if user is None or not user.is_active:
                policy.check_state(claims, None)  # counts the refusal and raises
                raise RevokedTokenError()
            policy.check_state(claims, keys.key_state(user))
        except TokenError as exc:
            raise self._refused(request, exc) from None
        except DatabaseError:
            raise ServiceUnavailable() from None
        policy.accept(claims)
        request._request.sjti_legacy = True
        # ``request.auth["sub"]`` names the user whichever claim the old token used
        return user, {**claims, "sub": str(user.pk)}


class SjtiAuthentication(_Base):
    """Both layers; the user and their key in one query (see the module docstring)."""

    def _user_layer(self, claims: Claims) -> Any:
        return keys.verified_user(claims)


class _OrmSource:
    """The key by primary key through the ORM (one query), for :class:`CachedKeys`."""

    def load_secret(self, user_id: str) -> bytes | None:
        from ._tables import secret_model

        rt = runtime()
        pk = keys.canonical_pk(user_id)
        if pk is None:
            return None
        model = secret_model(rt.options)
        # The key record: the secret AND the device list, in one read (a record without
        # the list would accept a signed-out device).
        row = (
            model._default_manager.filter(pk=pk)
            .values_list("token_secret", "token_devices")
            .first()
        )
        if row is None or row[0] is None:
            return None
        secret = open_secret(rt.auth.kek_ring, user_id, row[0])
        devices = parse_column(row[1])
        return secret if devices is None else devices_record(secret, devices)


_keys_lock = threading.Lock()
_keys_for: dict[int, CachedKeys] = {}


def _cached_keys(rt: Runtime) -> CachedKeys:
    """One CachedKeys per runtime, sharing the runtime's cache (which the store's own
    listener and the bus invalidate)."""
    found = _keys_for.get(id(rt))
    if found is None:
        with _keys_lock:
            _keys_for.clear()  # an old runtime (a reset, a fork) is gone
            found = _keys_for[id(rt)] = CachedKeys(_OrmSource(), cache=rt.auth.cache)
    return found


class SjtiStatelessAuthentication(_Base):
    """Both layers; no user load, the key through the bus-invalidated cache."""

    def _user_layer(self, claims: Claims) -> Any:
        key = _cached_keys(runtime()).get(str(claims["sub"]))
        UserVerifier.verify_claims(claims, key)
        return TokenUser(claims)
