"""Claim checks for access tokens (RFC 7519 §4.1, RFC 9068 §2.2), with the clock passed in."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import (
    ConfigurationError,
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidTypeError,
    MissingClaimError,
)

__all__ = ["ACCESS_TOKEN_TYPE", "Claims", "ClaimsPolicy", "check_claims", "check_typ"]

Claims = dict[str, Any]

ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a password
# NumericDate bounds: 0 (1970) .. 253402300799 (9999-12-31T23:59:59Z).
_MAX_NUMERIC_DATE: Final = 253_402_300_799
_MAX_STRING_CLAIM: Final = 1024
_DEFAULT_REQUIRED: Final = frozenset({"iss", "aud", "sub", "jti", "iat", "exp"})
_ABSENT: Final = object()
_STRING_CLAIMS: Final = ("iss", "sub", "jti")


def _normalise_typ(value: str) -> str:
    # RFC 7515 §4.1.9: compare case-insensitively; "application/" may be left out.
    value = value.lower()
    return value[12:] if value.startswith("application/") else value


@dataclass(frozen=True, slots=True)
class ClaimsPolicy:
    """What a token must carry to be accepted. Safe defaults; everything explicit.

    ``issuer`` and ``audience`` are required: a verifier that accepts any issuer or any
    audience is the classic cross-service confusion bug.
    """

    issuer: str
    audience: str | Collection[str]
    typ: str | None = ACCESS_TOKEN_TYPE
    leeway: int = 0
    required: frozenset[str] = _DEFAULT_REQUIRED
    max_lifetime: int | None = None
    _audiences: frozenset[str] = field(init=False, repr=False, compare=False)
    _typ: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigurationError("policy issuer must be a non-empty string")
        audience: object = self.audience
        if isinstance(audience, str):
            audiences: tuple[object, ...] = (audience,)
        elif isinstance(audience, Collection):
            audiences = tuple(audience)
        else:
            audiences = ()
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ConfigurationError("policy audience must be non-empty strings")
        if self.typ is not None and (not isinstance(self.typ, str) or not self.typ):
            raise ConfigurationError("typ must be a non-empty string, or None to skip the check")
        if not _is_int(self.leeway) or not 0 <= self.leeway <= 300:
            raise ConfigurationError("leeway must be 0..300 seconds")
        required = frozenset(self.required)
        if not all(isinstance(name, str) for name in required):
            raise ConfigurationError("required claims are names (strings)")
        if self.max_lifetime is not None:
            if not _is_int(self.max_lifetime) or self.max_lifetime <= 0:
                raise ConfigurationError("max_lifetime must be a positive number of seconds")
            required |= {"iat", "exp"}  # a lifetime cap is meaningless without both
        object.__setattr__(self, "required", required)
        object.__setattr__(self, "_audiences", frozenset(audiences))
        object.__setattr__(self, "_typ", _normalise_typ(self.typ) if self.typ else None)


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass; True is not a number of seconds


def check_typ(header: dict[str, Any], policy: ClaimsPolicy) -> None:
    """The header's ``typ`` must name the expected token type (RFC 8725 §3.11)."""
    expected = policy._typ
    if expected is None:
        return
    typ = header.get("typ")
    if not isinstance(typ, str) or _normalise_typ(typ) != expected:
        raise InvalidTypeError()


def _numeric_date(value: object, name: str) -> None:
    kind = type(value)
    if kind is not int and (kind is not float or not math.isfinite(value)):  # type: ignore[arg-type]
        raise InvalidClaimError(name)  # bool, str and null are refused here too
    if not 0 <= value <= _MAX_NUMERIC_DATE:  # type: ignore[operator]
        raise InvalidClaimError(name)


def check_claims(claims: Claims, policy: ClaimsPolicy, *, now: int) -> None:
    """Raise the specific :class:`TokenError` for the first failing claim.

    Order: presence, types, issuer, audience, then time. Runs on every request, so it is
    written as one flat pass.
    """
    if not claims.keys() >= policy.required:
        raise MissingClaimError(min(policy.required - claims.keys()))
    get = claims.get
    for name in _STRING_CLAIMS:
        value = get(name, _ABSENT)
        if value is not _ABSENT and (
            type(value) is not str or not value or len(value) > _MAX_STRING_CLAIM
        ):
            raise InvalidClaimError(name)
    exp = get("exp", _ABSENT)
    if exp is not _ABSENT:
        _numeric_date(exp, "exp")
    nbf = get("nbf", _ABSENT)
    if nbf is not _ABSENT:
        _numeric_date(nbf, "nbf")
    iat = get("iat", _ABSENT)
    if iat is not _ABSENT:
        _numeric_date(iat, "iat")

    iss = get("iss", _ABSENT)
    if iss is not _ABSENT and iss != policy.issuer:
        raise InvalidIssuerError()
    aud = get("aud", _ABSENT)
    if aud is not _ABSENT:
        if type(aud) is str:
            if aud not in policy._audiences:
                raise InvalidAudienceError()
        elif type(aud) is list and aud and all(type(a) is str for a in aud):
            if policy._audiences.isdisjoint(aud):
                raise InvalidAudienceError()
        else:
            raise InvalidClaimError("aud")

    leeway = policy.leeway
    if exp is not _ABSENT and exp <= now - leeway:
        raise ExpiredTokenError()
    if nbf is not _ABSENT and nbf > now + leeway:
        raise ImmatureTokenError()
    if iat is not _ABSENT:
        if iat > now + leeway:
            raise ImmatureTokenError()
        if exp is not _ABSENT:
            lifetime = exp - iat
            if lifetime < 0 or (policy.max_lifetime is not None and lifetime > policy.max_lifetime):
                raise InvalidClaimError("exp")
