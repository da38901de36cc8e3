"""FastAPI dependencies: the boundary layer, and the user layer in two modes.

Look the key up (the store through a :class:`~sjti.cache.CachedKeys`)::

    require_user = RequireUser(UserVerifier(boundary), CachedKeys(store))

    @app.get("/me")
    async def me(user: Annotated[Verified, Depends(require_user)]) -> dict[str, str]:
        return {"sub": user.subject}

Verify from the users row the app loads anyway (zero extra queries)::

    bearer = BearerClaims(boundary)              # boundary layer only; cached per request

    def load_user(token: Annotated[Verified, Depends(bearer)]) -> RowMapping | None:
        return conn.execute(select(users).where(users.c.id == token.subject)).mappings().first()

    current_user = user_layer_from_row(load_user, kek_ring, layout, bearer=bearer)

    @app.get("/me")
    def me(user: Annotated[VerifiedRow[RowMapping], Depends(current_user)]) -> ...:
        return {"name": user.row["name"]}

Refusals raise :class:`fastapi.HTTPException`: 401 with the RFC 6750 ``WWW-Authenticate``
header and ``detail={"error": "invalid_token", "error_description": code}``; a store that
is down (:class:`~sjti.BackendError`) or a secret that does not open gives 503 (fail
closed, never accepted). Behind :class:`sjti.asgi.BoundaryMiddleware` built with the same
:class:`~sjti.BoundaryVerifier` object, the dependencies reuse its claims instead of
verifying the signature again.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, cast

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ._core.binding import UserKey
from ._core.claims import Claims
from .asgi import CLAIMS_KEY, TOKEN_KEY, VERIFIER_KEY, Rejection, bearer_token, check_realm
from .cache.provider import CachedKeys
from .errors import (
    BackendError,
    ConfigurationError,
    InvalidClaimError,
    RevokedTokenError,
    SecretError,
    TokenError,
)
from .tokens import BoundaryVerifier, UserVerifier

if TYPE_CHECKING:
    from ._core.wrapping import KekRing
    from .stores.layouts import AppUsersTable

__all__ = [
    "BearerClaims",
    "KeyLookup",
    "RequireUser",
    "Verified",
    "VerifiedRow",
    "user_layer_from_row",
    "user_layer_with_key",
]

RowT = TypeVar("RowT")

KeyLookup = Callable[[str], UserKey] | Callable[[str], Awaitable[UserKey]]
"""``user_id -> UserKey``, sync (run in the thread pool) or async; raises to refuse."""

# Only so that /docs shows the bearer scheme (and its "Authorize" button); the header is
# parsed by bearer_token, which refuses what HTTPBearer would let through.
_openapi_bearer = HTTPBearer(auto_error=False, scheme_name="sjti")


@dataclass(frozen=True, slots=True)
class Verified:
    """A request's accepted token: the raw ``token``, its ``claims`` and ``subject``."""

    token: str
    claims: Claims
    subject: str


@dataclass(frozen=True, slots=True)
class VerifiedRow(Verified, Generic[RowT]):
    """:class:`Verified` plus the users ``row`` whose key verified the token."""

    row: RowT


def _http_error(rejection: Rejection) -> HTTPException:
    return HTTPException(rejection.status, detail=rejection.body, headers=rejection.headers)


def _subject(claims: Claims) -> str:
    sub = claims.get("sub")
    if type(sub) is not str:
        raise InvalidClaimError("sub")
    return sub


def _boundary(request: Request, verifier: BoundaryVerifier, realm: str | None) -> Verified:
    """The boundary layer for one request; TokenError, or a 401 for a missing token."""
    token = bearer_token(request.headers.getlist("authorization"))
    if token is None:
        raise _http_error(Rejection.missing(realm))
    scope = request.scope
    if scope.get(VERIFIER_KEY) is verifier and scope.get(TOKEN_KEY) == token:
        claims = cast(Claims, scope[CLAIMS_KEY])  # the middleware ran this very check
    else:
        claims = verifier.verify(token)
    return Verified(token, claims, _subject(claims))


class BearerClaims:
    """Dependency: the boundary layer only (signature, claims). **Not revocation-aware.**

    Use it where revocation does not matter, or to load the user row by
    ``Verified.subject`` for :func:`user_layer_from_row`.
    """

    __slots__ = ("realm", "verifier")

    def __init__(self, verifier: BoundaryVerifier, *, realm: str | None = None) -> None:
        if not isinstance(verifier, BoundaryVerifier):
            raise ConfigurationError("BearerClaims needs a BoundaryVerifier")
        self.verifier = verifier
        self.realm = check_realm(realm)

    async def __call__(
        self,
        request: Request,
        _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_openapi_bearer)],
    ) -> Verified:
        try:
            return _boundary(request, self.verifier, self.realm)
        except TokenError as exc:
            raise _http_error(Rejection.invalid(exc, self.realm)) from exc


class RequireUser:
    """Dependency: both layers, fetching the user's key by the token's ``sub``.

    ``keys`` is a :class:`~sjti.cache.CachedKeys` (its ``aget`` is used) or a
    :data:`KeyLookup`. A lookup raises :class:`~sjti.RevokedTokenError` for an unknown
    user and :class:`~sjti.BackendError` when its store is down (503).
    """

    __slots__ = ("_lookup", "realm", "verifier")

    def __init__(
        self, verifier: UserVerifier, keys: CachedKeys | KeyLookup, *, realm: str | None = None
    ) -> None:
        if not isinstance(verifier, UserVerifier):
            raise ConfigurationError("RequireUser needs a UserVerifier")
        self.verifier = verifier
        self.realm = check_realm(realm)
        self._lookup: Callable[[str], Awaitable[UserKey]]
        if isinstance(keys, CachedKeys):
            self._lookup = keys.aget
        elif inspect.iscoroutinefunction(keys) or inspect.iscoroutinefunction(
            getattr(keys, "__call__", None)  # noqa: B004 - async callable objects count too
        ):
            self._lookup = cast(Callable[[str], Awaitable[UserKey]], keys)
        elif callable(keys):
            sync = cast(Callable[[str], UserKey], keys)

            async def in_thread(user_id: str) -> UserKey:
                return await run_in_threadpool(sync, user_id)

            self._lookup = in_thread
        else:
            raise ConfigurationError("keys must be a CachedKeys or a lookup function")

    async def __call__(
        self,
        request: Request,
        _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_openapi_bearer)],
    ) -> Verified:
        try:
            verified = _boundary(request, self.verifier.boundary, self.realm)
            key = await self._lookup(verified.subject)
            UserVerifier.verify_claims(verified.claims, key)
        except TokenError as exc:
            raise _http_error(Rejection.invalid(exc, self.realm)) from exc
        except (BackendError, SecretError) as exc:
            raise _http_error(Rejection.unavailable()) from exc
        return verified


class _RowDependency(Generic[RowT]):
    """The user layer on a row another dependency loaded; FastAPI reads ``__signature__``."""

    def __init__(
        self,
        get_row: Callable[..., Any],
        key_of_row: Callable[[RowT], UserKey | None],
        bearer: BearerClaims,
    ) -> None:
        self._key_of_row = key_of_row
        self._realm = bearer.realm
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        self.__signature__ = inspect.Signature(
            [
                inspect.Parameter(
                    "verified", kind, annotation=Annotated[Verified, Depends(bearer)]
                ),
                inspect.Parameter("row", kind, annotation=Annotated[Any, Depends(get_row)]),
            ]
        )

    async def __call__(self, verified: Verified, row: RowT | None) -> VerifiedRow[RowT]:
        try:
            if row is None:  # no such user: refused like a revoked token
                raise RevokedTokenError()
            key = self._key_of_row(row)
            if key is None:  # no secret yet: nothing can verify
                raise RevokedTokenError()
            UserVerifier.verify_claims(verified.claims, key)
        except TokenError as exc:
            raise _http_error(Rejection.invalid(exc, self._realm)) from exc
        except (BackendError, SecretError) as exc:
            raise _http_error(Rejection.unavailable()) from exc
        return VerifiedRow(verified.token, verified.claims, verified.subject, row)


def user_layer_with_key(
    get_row: Callable[..., Any],
    key_of_row: Callable[[RowT], UserKey | None],
    *,
    bearer: BearerClaims,
) -> Callable[..., Awaitable[VerifiedRow[RowT]]]:
    """Dependency: both layers, the key taken from the row ``get_row`` loads.

    ``get_row`` is the app's own dependency (sync or async) returning the user row or
    ``None``; it should depend on ``bearer`` to learn the subject (FastAPI then runs the
    boundary check once per request). ``key_of_row`` turns the row into the user's key.
    """
    if not isinstance(bearer, BearerClaims):
        raise ConfigurationError("bearer must be the BearerClaims that get_row depends on")
    return _RowDependency(get_row, key_of_row, bearer)


def user_layer_from_row(
    get_row: Callable[..., Any],
    kek_ring: KekRing,
    layout: AppUsersTable,
    *,
    bearer: BearerClaims,
) -> Callable[..., Awaitable[VerifiedRow[Mapping[Any, Any]]]]:
    """:func:`user_layer_with_key` for an :class:`~sjti.stores.sql.AppUsersTable` row:
    the secret column is unwrapped with ``kek_ring``, no query is made."""
    from .stores.layouts import user_key_from_row  # needs SQLAlchemy: only for this mode

    def key_of_row(row: Mapping[Any, Any]) -> UserKey | None:
        return user_key_from_row(row, kek_ring, layout)

    return user_layer_with_key(get_row, key_of_row, bearer=bearer)
