"""A Flask extension: both layers on a view, with the key looked up or taken from a row.

::

    sjti = Sjti(app, verifier=UserVerifier(boundary), lookup=CachedKeys(store))

    @app.get("/me")
    @sjti.require_user                              # key looked up by the token's sub
    def me():
        return {"sub": g.sjti_claims["sub"]}

    # Or from the users row the view needs anyway (zero extra queries):
    load_key = row_key(lambda sub: load_user_row(sub), kek_ring, layout)

    @app.get("/profile")
    @sjti.require_user(user_key=load_key)
    def profile():
        return {"name": g.sjti_user_row["name"]}

On success ``g.sjti_claims``, ``g.sjti_token`` and ``g.sjti_subject`` are set. Refusals
answer 401 with the RFC 6750 ``WWW-Authenticate`` header and the JSON body
``{"error": "invalid_token", "error_description": code}``; a store that is down
(:class:`~sjti.BackendError`) or a secret that does not open answers 503 (fail closed).
Synchronous views only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar, overload

import orjson
from flask import Flask, abort, current_app, g, request

from ._core.binding import UserKey
from ._core.claims import Claims
from .asgi import Rejection, bearer_token, check_realm
from .cache.provider import CachedKeys
from .errors import (
    BackendError,
    ConfigurationError,
    InvalidClaimError,
    RevokedTokenError,
    SecretError,
    TokenError,
)
from .tokens import UserVerifier

if TYPE_CHECKING:
    from ._core.wrapping import KekRing
    from .stores.layouts import AppUsersTable

__all__ = ["KeyFromClaims", "Sjti", "row_key"]

P = ParamSpec("P")
R = TypeVar("R")

KeyFromClaims = Callable[[Claims], UserKey | None]
"""Boundary-verified claims -> the user's key (``None``: no such user, refused)."""


def row_key(
    load_row: Callable[[str], Mapping[Any, Any] | None],
    kek_ring: KekRing,
    layout: AppUsersTable,
) -> KeyFromClaims:
    """A :data:`KeyFromClaims` that loads the app's users row by ``sub`` (the app's own
    query), keeps it in ``g.sjti_user_row`` for the view, and unwraps the key from it."""
    from .stores.layouts import user_key_from_row  # needs SQLAlchemy: only for this mode

    def key(claims: Claims) -> UserKey | None:
        row = load_row(_subject(claims))
        g.sjti_user_row = row
        return user_key_from_row(row, kek_ring, layout) if row is not None else None

    return key


def _subject(claims: Claims) -> str:
    sub = claims.get("sub")
    if type(sub) is not str:
        raise InvalidClaimError("sub")
    return sub


def _abort(rejection: Rejection) -> NoReturn:
    response = current_app.response_class(
        orjson.dumps(rejection.body),
        status=rejection.status,
        mimetype="application/json",
        headers=rejection.headers,
    )
    abort(response)


class Sjti:
    """The extension. ``verifier`` checks both layers; ``lookup`` (a
    :class:`~sjti.cache.CachedKeys` or ``user_id -> UserKey``) serves
    :meth:`require_user` unless a view passes its own ``user_key``."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: UserVerifier,
        lookup: CachedKeys | Callable[[str], UserKey] | None = None,
        realm: str | None = None,
    ) -> None:
        if not isinstance(verifier, UserVerifier):
            raise ConfigurationError("Sjti needs a UserVerifier")
        self.verifier = verifier
        self.realm = check_realm(realm)
        self._lookup: Callable[[str], UserKey] | None
        if isinstance(lookup, CachedKeys):
            self._lookup = lookup.get
        elif lookup is None or callable(lookup):
            self._lookup = lookup
        else:
            raise ConfigurationError("lookup must be a CachedKeys or a function")
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension as ``app.extensions["sjti"]``."""
        app.extensions["sjti"] = self

    def verify_request(self, user_key: KeyFromClaims | None = None) -> Claims:
        """Both layers for the current request; sets ``g.sjti_*`` or aborts (401/503)."""
        try:
            token = bearer_token(request.headers.getlist("Authorization"))
            if token is None:
                _abort(Rejection.missing(self.realm))
            claims = self.verifier.boundary.verify(token)
            if user_key is not None:
                key = user_key(claims)
                if key is None:
                    raise RevokedTokenError()
            elif self._lookup is not None:
                key = self._lookup(_subject(claims))
            else:
                raise ConfigurationError("require_user needs a lookup or a user_key function")
            UserVerifier.verify_claims(claims, key)
        except TokenError as exc:
            _abort(Rejection.invalid(exc, self.realm))
        except (BackendError, SecretError):
            _abort(Rejection.unavailable())
        g.sjti_claims = claims
        g.sjti_token = token
        g.sjti_subject = _subject(claims)
        return claims

    @overload
    def require_user(self, view: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def require_user(
        self, view: None = None, /, *, user_key: KeyFromClaims | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def require_user(
        self, view: Callable[P, R] | None = None, /, *, user_key: KeyFromClaims | None = None
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: the view runs only for a token that passes both layers.

        ``@sjti.require_user`` looks the key up; ``@sjti.require_user(user_key=f)`` takes
        it from ``f(claims)`` (see :func:`row_key`).
        """
        if user_key is None and self._lookup is None:
            raise ConfigurationError("require_user needs a lookup or a user_key function")

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                self.verify_request(user_key)
                return func(*args, **kwargs)

            return wrapper

        return decorate(view) if view is not None else decorate
