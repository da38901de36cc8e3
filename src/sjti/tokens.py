"""The safe facade: issue access tokens and verify them in two layers.

* :class:`Issuer` signs RFC 9068 access tokens that carry ``jti`` and ``sjti``.
* :class:`BoundaryVerifier` checks signature and claims with the application keys only.
  It needs no database and is **not revocation-aware**: use it at gateways, to drop
  forged, expired and foreign tokens cheaply.
* :class:`UserVerifier` adds the user layer: ``sjti`` recomputed with the user's key. Only
  a token that passes both layers is accepted; rotating the user's key revokes it.

Sync and async callers share the same pure checks; only fetching the user key differs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final

from ._core.binding import SJTI_CLAIM, UserKey, check_sjti, compute_sjti
from ._core.claims import ACCESS_TOKEN_TYPE, Claims, ClaimsPolicy, check_claims, check_typ
from ._core.codec import MAX_JSON_DEPTH, b64url_encode, dumps, loads_object, nesting_depth
from ._core.jws import DEFAULT_MAX_TOKEN_SIZE, CompactVerifier, encode_header, sign_compact
from ._core.keys import SigningKey, VerifyingKey
from ._core.keyset import KeySet
from .errors import ConfigurationError, InvalidClaimError

__all__ = ["BoundaryVerifier", "Clock", "Issuer", "UserVerifier", "system_clock"]

Clock = Callable[[], int]
# Claims the issuer sets itself; callers may not override them through ``claims=``.
_RESERVED: Final = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", SJTI_CLAIM})


def system_clock() -> int:
    """Seconds since the epoch, as an int (NumericDate)."""
    return int(time.time())


def _as_keyset(keys: KeySet | SigningKey | VerifyingKey) -> KeySet:
    if isinstance(keys, KeySet):
        return keys
    if isinstance(keys, SigningKey):
        return KeySet(keys)
    return KeySet(verify_only=[keys])


class Issuer:
    """Issues access tokens bound to a user key.

    >>> issuer = Issuer(SigningKey.generate("EdDSA"), issuer="https://auth", audience="api")
    >>> token = issuer.issue("user-1", UserKey.generate())
    """

    __slots__ = ("_audience", "_clock", "_header", "_issuer", "_key", "max_token_size", "ttl")

    def __init__(
        self,
        keys: KeySet | SigningKey,
        *,
        issuer: str,
        audience: str | Collection[str],
        ttl: int = 900,
        typ: str = ACCESS_TOKEN_TYPE,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        clock: Clock = system_clock,
    ) -> None:
        self._key = _as_keyset(keys).active
        self.max_token_size = max_token_size
        if not isinstance(issuer, str) or not issuer:
            raise ConfigurationError("issuer must be a non-empty string")
        self._issuer = issuer
        if isinstance(audience, str):
            self._audience: str | list[str] = audience
        else:
            self._audience = list(audience)
        if not self._audience:
            raise ConfigurationError("audience must not be empty")
        if not isinstance(ttl, int) or ttl <= 0:
            raise ConfigurationError("ttl must be a positive number of seconds")
        self.ttl = ttl
        self._clock = clock
        self._header = encode_header(self._key, {"typ": typ})

    @property
    def key(self) -> SigningKey:
        return self._key

    def claims_for(
        self,
        subject: str,
        user_key: UserKey,
        *,
        claims: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        not_before: int | None = None,
        now: int | None = None,
    ) -> Claims:
        """The claims :meth:`issue` would sign (``sjti`` included), for inspection/tests."""
        if not isinstance(subject, str) or not subject:
            raise ConfigurationError("subject must be a non-empty string")
        issued_at = self._clock() if now is None else now
        payload: Claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._audience,
            "exp": issued_at + (self.ttl if ttl is None else ttl),
            "iat": issued_at,
            "jti": b64url_encode(os.urandom(16)).decode("ascii"),
        }
        if not_before is not None:
            payload["nbf"] = not_before
        if claims:
            clash = _RESERVED.intersection(claims)
            if clash:
                raise ConfigurationError(f"claim is set by the issuer: {sorted(clash)[0]}")
            payload.update(claims)
        payload[SJTI_CLAIM] = compute_sjti(payload, user_key)
        return payload

    def issue(
        self,
        subject: str,
        user_key: UserKey,
        *,
        claims: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        not_before: int | None = None,
        now: int | None = None,
    ) -> str:
        """A signed compact JWT for ``subject``, bound to ``user_key``.

        ``claims`` adds application claims (all bound by ``sjti``); the registered ones are
        set here: ``ttl`` seconds of life, ``not_before`` for ``nbf``, ``now`` for ``iat``.
        """
        payload = self.claims_for(
            subject, user_key, claims=claims, ttl=ttl, not_before=not_before, now=now
        )
        raw = dumps(payload)  # claims_for already refused non-JSON values
        # Never issue what a verifier with default limits must refuse.
        if nesting_depth(raw, payload) > MAX_JSON_DEPTH:
            raise ConfigurationError(f"claims nest deeper than {MAX_JSON_DEPTH} levels")
        token = sign_compact(self._header, raw, self._key)
        if len(token) > self.max_token_size:
            raise ConfigurationError(f"token would exceed {self.max_token_size} bytes")
        return token.decode("ascii")


class BoundaryVerifier:
    """Layer one: signature, header and claims with the application keys. No database.

    Not revocation-aware on its own: a revoked token still passes here until it expires.
    """

    __slots__ = ("_clock", "_jws", "_policy")

    def __init__(
        self,
        keys: KeySet | SigningKey | VerifyingKey,
        policy: ClaimsPolicy,
        *,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        clock: Clock = system_clock,
    ) -> None:
        self._jws = CompactVerifier(
            _as_keyset(keys),
            max_size=max_token_size,
            check_header=lambda header: check_typ(header, policy),
        )
        self._policy = policy
        self._clock = clock

    # Read-only: the header cache and the typ check were built for these; make a new
    # verifier to change them.
    @property
    def policy(self) -> ClaimsPolicy:
        return self._policy

    @property
    def keys(self) -> KeySet:
        return self._jws.keys

    def verify(self, token: str | bytes, *, now: int | None = None) -> Claims:
        """The token's claims, or the specific :class:`TokenError`."""
        _, payload = self._jws.verify(token)
        claims = loads_object(payload)
        check_claims(claims, self._policy, now=self._clock() if now is None else now)
        return claims


class UserVerifier:
    """Both layers: the boundary checks, then ``sjti`` against the user's key.

    Three ways to supply the key: in hand (:meth:`verify`), from a lookup function
    (:meth:`verify_with`), or from an async lookup (:meth:`averify_with`).
    """

    __slots__ = ("boundary",)

    def __init__(self, boundary: BoundaryVerifier) -> None:
        self.boundary = boundary

    @staticmethod
    def verify_claims(claims: Claims, user_key: UserKey) -> Claims:
        """The user layer alone, on claims the boundary already verified."""
        check_sjti(claims, user_key)
        return claims

    def verify(self, token: str | bytes, user_key: UserKey, *, now: int | None = None) -> Claims:
        claims = self.boundary.verify(token, now=now)
        check_sjti(claims, user_key)
        return claims

    def verify_with(
        self,
        token: str | bytes,
        lookup: Callable[[str], UserKey],
        *,
        now: int | None = None,
    ) -> Claims:
        """Verify, fetching the key of the token's ``sub`` through ``lookup``.

        ``lookup`` raises to refuse (e.g. :class:`RevokedTokenError` for unknown users).
        """
        claims = self.boundary.verify(token, now=now)
        check_sjti(claims, lookup(_subject(claims)))
        return claims

    async def averify_with(
        self,
        token: str | bytes,
        lookup: Callable[[str], Awaitable[UserKey]],
        *,
        now: int | None = None,
    ) -> Claims:
        claims = self.boundary.verify(token, now=now)
        check_sjti(claims, await lookup(_subject(claims)))
        return claims


def _subject(claims: Claims) -> str:
    sub = claims.get("sub")
    if type(sub) is not str:
        raise InvalidClaimError("sub")
    return sub
