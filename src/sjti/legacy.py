"""Migration mode: accept the tokens an application issued *before* sjti, for a while.

A live system switching to sjti has clients holding tokens without ``sjti`` (minted by
djangorestframework-simplejwt, or by hand with PyJWT). Logging everyone out on deploy day
is what :class:`LegacyTokens` avoids::

    legacy = LegacyTokens(
        until=datetime(2025, 10, 1, tzinfo=UTC),   # the window closes here
        keys=[settings.SECRET_KEY],                 # the old verification: key(s) ...
        algorithms=["HS256"],                       # ... and algorithm(s), pinned
        user_id_claim="user_id",                    # simplejwt; "sub" for most PyJWT apps
        token_type="access",                        # simplejwt's token_type claim
    )
    claims = legacy.verify(token, state_of)         # state_of(user_id) -> KeyState | None

Until ``until`` a token without ``sjti`` is accepted if it passes the old verification
(signature with an old key and an allowed algorithm, ``exp``, optional ``iss``/``aud``,
simplejwt's ``token_type``) **and** the user's key was not rotated after its ``iat``: the
first revocation of a user (:class:`KeyState` ``version`` 2 or more, ``rotated_at`` at or
after ``iat``) refuses every legacy token that user holds, so legacy tokens are revocable
per user from day one. A user's *first* key (``version`` 1, made lazily at the first sjti
token) is not a revocation and refuses nothing.

From ``until`` on, every token without ``sjti`` is refused with
:class:`~sjti.errors.LegacyWindowClosedError` (code ``legacy_window_closed``), a code of
its own so clients and dashboards can tell "sign in again" from an attack.

Every acceptance is counted (:meth:`LegacyTokens.stats`), logged on the ``sjti.legacy``
logger (user id and ``iat``, never the token) and passed to ``on_accept`` (e.g. a
Prometheus counter): when the count stays at zero, close the window.

The old verification runs on PyJWT (the library that minted those tokens); it is imported
on first use, so ``import sjti`` does not need it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ._core.binding import SJTI_CLAIM
from ._core.codec import b64url_decode
from .errors import (
    AlgorithmNotAllowedError,
    ConfigurationError,
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidSignatureError,
    LegacyWindowClosedError,
    MalformedTokenError,
    MissingClaimError,
    RevokedTokenError,
    TokenError,
    TokenTooLargeError,
)
from .tokens import Clock, system_clock

__all__ = ["KeyState", "LegacyAcceptance", "LegacyStats", "LegacyTokens", "is_legacy"]

logger = logging.getLogger("sjti.legacy")

_MAX_TOKEN_SIZE: Final = 8192
# Algorithms the old verification may pin; "none" is never one of them.
_ALLOWED: Final = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the user's row says about their key: ``version`` (0: no key yet, 1: the first
    key, 2+: rotated, i.e. revoked at least once) and when it last changed."""

    version: int
    rotated_at: datetime | None

    @classmethod
    def from_row(
        cls,
        row: Mapping[str, Any],
        version_column: str = "token_version",
        rotated_at_column: str = "token_rotated_at",
    ) -> KeyState:
        """From a users row of the ``AppUsersTable`` layout (or any mapping)."""
        return cls(int(row.get(version_column) or 0), row.get(rotated_at_column))

    def revoked_since(self, issued_at: int) -> bool:
        """True if a revocation happened at or after ``issued_at`` (seconds)."""
        if self.version < 2 or self.rotated_at is None:
            return False
        rotated = self.rotated_at
        if rotated.tzinfo is None:  # naive datetimes from the database are UTC
            rotated = rotated.replace(tzinfo=UTC)
        return rotated.timestamp() >= issued_at


@dataclass(frozen=True, slots=True)
class LegacyAcceptance:
    """One legacy token accepted: for ``on_accept`` (metrics) and the log."""

    user_id: str
    issued_at: int
    token_type: str | None


@dataclass(frozen=True, slots=True)
class LegacyStats:
    """Counts since the process started (per process; sum them in your metrics)."""

    accepted: int
    refused_revoked: int
    refused_window_closed: int


def is_legacy(token: str | bytes) -> bool:
    """True if ``token`` looks like a JWT whose payload has no ``sjti`` claim.

    Reads the payload without verifying anything: use it only to pick a verification path,
    never to accept. Anything that is not a JWT with a JSON object payload is ``False``.
    """
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            return False
    if len(token) > _MAX_TOKEN_SIZE or token.count(".") != 2:
        return False
    try:
        payload = json.loads(b64url_decode(token.split(".")[1]))
    except (TokenError, ValueError):
        return False
    return isinstance(payload, dict) and SJTI_CLAIM not in payload


def _as_utc(until: datetime) -> datetime:
    if not isinstance(until, datetime):
        raise ConfigurationError("LegacyTokens(until=...) must be a datetime")
    if until.tzinfo is None:
        raise ConfigurationError("LegacyTokens(until=...) must be timezone-aware")
    return until.astimezone(UTC)


class LegacyTokens:
    """The migration-window policy (see the module docstring).

    ``keys``: the old verification keys (HMAC secrets as ``str``/``bytes``, or public keys
    in PEM); ``algorithms``: the old algorithms, pinned (never taken from the token).
    ``user_id_claim``: where the old tokens name the user (``"user_id"`` for simplejwt,
    ``"sub"`` for most hand-rolled ones). ``token_type``: the value simplejwt's
    ``token_type`` claim must have (``None``: not checked, for tokens without it).
    ``issuer``/``audience``: checked when given. ``on_accept``: called for each acceptance.
    """

    def __init__(
        self,
        *,
        until: datetime,
        keys: Sequence[str | bytes],
        algorithms: Collection[str] = ("HS256",),
        user_id_claim: str = "user_id",
        token_type: str | None = "access",  # noqa: S107 - simplejwt's claim value
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = 0,
        on_accept: Callable[[LegacyAcceptance], object] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.until = _as_utc(until)
        if isinstance(keys, str | bytes) or not keys:
            raise ConfigurationError("LegacyTokens(keys=...) must be a non-empty list of keys")
        self._keys = [k.encode("utf-8") if isinstance(k, str) else k for k in keys]
        if any(not k for k in self._keys):
            raise ConfigurationError("LegacyTokens(keys=...) holds an empty key")
        algs = list(algorithms)
        if not algs or any(a not in _ALLOWED for a in algs):
            raise ConfigurationError(
                f"LegacyTokens(algorithms=...) must be among {sorted(_ALLOWED)}"
            )
        self.algorithms = tuple(algs)
        if not isinstance(user_id_claim, str) or not user_id_claim:
            raise ConfigurationError("LegacyTokens(user_id_claim=...) must be a claim name")
        self.user_id_claim = user_id_claim
        self.token_type = token_type
        self.issuer = issuer
        self.audience = audience
        if not isinstance(leeway, int) or not 0 <= leeway <= 300:
            raise ConfigurationError("LegacyTokens(leeway=...) must be 0..300 seconds")
        self.leeway = leeway
        self._on_accept = on_accept
        self._clock = clock
        self._lock = threading.Lock()
        self._accepted = self._revoked = self._closed = 0

    def __repr__(self) -> str:
        return f"LegacyTokens(until={self.until.isoformat()}, algorithms={list(self.algorithms)})"

    # -- the window -----------------------------------------------------------------------

    def is_open(self, now: int | None = None) -> bool:
        """True while legacy tokens may still be accepted."""
        now = self._clock() if now is None else now
        return now < self.until.timestamp()

    def stats(self) -> LegacyStats:
        with self._lock:
            return LegacyStats(self._accepted, self._revoked, self._closed)

    # -- verification ---------------------------------------------------------------------

    def open(
        self, token: str | bytes, *, token_type: str | None = None, now: int | None = None
    ) -> dict[str, Any]:
        """The old verification alone: the claims, or the specific :class:`TokenError`.

        After the cutoff: :class:`LegacyWindowClosedError`, before any cryptography.
        ``token_type`` overrides the expected simplejwt ``token_type`` (``"refresh"`` when
        a legacy refresh token is exchanged).
        """
        now = self._clock() if now is None else now
        if not self.is_open(now):
            with self._lock:
                self._closed += 1
            raise LegacyWindowClosedError()
        if isinstance(token, bytes):
            token = token.decode("ascii", "replace")
        if len(token) > _MAX_TOKEN_SIZE:
            raise TokenTooLargeError()
        claims = self._decode(token, now)
        if SJTI_CLAIM in claims:  # an sjti token takes the sjti path, never this one
            raise MalformedTokenError("not a legacy token")
        expected = token_type if token_type is not None else self.token_type
        if expected is not None and claims.get("token_type") != expected:
            raise InvalidClaimError("token_type")
        self.user_id(claims)
        iat = claims.get("iat")
        if type(iat) is not int:
            raise MissingClaimError("iat") if iat is None else InvalidClaimError("iat")
        return claims

    def user_id(self, claims: Mapping[str, Any]) -> str:
        """The user the legacy claims name, as sjti's ``sub`` spells it (text)."""
        value = claims.get(self.user_id_claim)
        if value is None:
            raise MissingClaimError(self.user_id_claim)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise InvalidClaimError(self.user_id_claim)
        return str(value)

    def check_state(self, claims: Mapping[str, Any], state: KeyState | None) -> None:
        """Refuse (:class:`RevokedTokenError`) if the user was revoked at or after ``iat``;
        ``state`` ``None`` means the user does not exist (refused too)."""
        if state is None or state.revoked_since(int(claims["iat"])):
            with self._lock:
                self._revoked += 1
            raise RevokedTokenError()

    def accept(self, claims: Mapping[str, Any]) -> None:
        """Count, log and report one acceptance (after :meth:`check_state` passed)."""
        with self._lock:
            self._accepted += 1
        event = LegacyAcceptance(self.user_id(claims), int(claims["iat"]), claims.get("token_type"))
        logger.info(
            "legacy token accepted (user %s, iat %s, token_type %s)",
            event.user_id,
            event.issued_at,
            event.token_type,
        )
        if self._on_accept is not None:
            self._on_accept(event)

    def verify(
        self,
        token: str | bytes,
        state_of: Callable[[str], KeyState | None],
        *,
        token_type: str | None = None,
        now: int | None = None,
    ) -> dict[str, Any]:
        """Everything: window, old verification, the user's key state; counted.

        ``state_of(user_id)`` returns the user's :class:`KeyState` (``None``: no such user).
        """
        claims = self.open(token, token_type=token_type, now=now)
        self.check_state(claims, state_of(self.user_id(claims)))
        self.accept(claims)
        return claims

    def _decode(self, token: str, now: int) -> dict[str, Any]:
        import jwt  # PyJWT: imported on first use only

        options: dict[str, Any] = {
            "require": ["exp", "iat"],
            "verify_aud": self.audience is not None,
            # Time is checked below on sjti's clock (the wall clock PyJWT reads is not
            # the one a test, or a caller passing ``now``, runs on).
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
        }
        last: TokenError = InvalidSignatureError()
        for key in self._keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=list(self.algorithms),
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options=options,  # type: ignore[arg-type]  # PyJWT types it as a TypedDict
                )
            except jwt.InvalidSignatureError:
                continue  # the next old key may have signed it
            except jwt.PyJWTError as exc:
                last = _mapped(exc)
                break
            else:
                _check_time(claims, now, self.leeway)
                return claims
        raise last


def _check_time(claims: Mapping[str, Any], now: int, leeway: int) -> None:
    """PyJWT checks ``exp`` with the wall clock; sjti's clock is the one that counts."""
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidClaimError("exp")
    if exp <= now - leeway:
        raise ExpiredTokenError()
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidClaimError(name)
        if value > now + leeway:
            raise ImmatureTokenError()


def _mapped(exc: Exception) -> TokenError:
    """PyJWT's error as sjti's class for the same cause."""
    import jwt

    if isinstance(exc, jwt.ExpiredSignatureError):
        return ExpiredTokenError()
    if isinstance(exc, jwt.ImmatureSignatureError):
        return ImmatureTokenError()
    if isinstance(exc, jwt.InvalidAudienceError):
        return InvalidAudienceError()
    if isinstance(exc, jwt.InvalidIssuerError):
        return InvalidIssuerError()
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return MissingClaimError(str(exc.claim))
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return AlgorithmNotAllowedError()
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return InvalidClaimError("iat")
    return MalformedTokenError()
