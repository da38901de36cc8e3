"""``denylist``: a list of revoked ``jti`` values, each kept until its token expires.

State: "is this token's ``jti`` denied", fetched by the ``jti`` itself. The key is the
claim, never a hash of the token's bytes: a copy re-encoded (other JSON spacing or escapes,
re-signed) or with an ECDSA-malleated signature ``(r, n - s)`` has other bytes but the same
``jti``, so it maps to the same entry and cannot slip past.

Costs, honestly: state is O(revoked tokens until their ``exp``), one entry per token, kept
until :meth:`DenylistStrategy.retain_until`. Revoking one token is one write. Revoking a
*user* needs the list of that user's live ``jti`` values, so the issuer must record every
token it issues (O(live tokens) more state) or the strategy cannot log a user out at all.
With the application key an attacker mints tokens with fresh ``jti`` values, which no list
can hold.
"""

from __future__ import annotations

import math
from typing import Final

from ...errors import ConfigurationError, InvalidClaimError, MissingClaimError, RevokedTokenError
from ..claims import Claims
from .base import string_claim

__all__ = ["DenylistStrategy"]


class DenylistStrategy:
    """State: ``bool``, True when the token's ``jti`` is denied. Keyed by ``jti``."""

    __slots__ = ()
    name: Final = "denylist"
    needs_state: Final = True

    def stamp(self, claims: Claims, state: bool, *, now_ms: int) -> Claims:
        """Nothing to add, but a token without a usable ``jti`` could never be revoked."""
        try:
            string_claim(claims, "jti")
        except (MissingClaimError, InvalidClaimError):
            raise ConfigurationError("a denylist token needs a non-empty string jti") from None
        return {}

    def check(self, claims: Claims, state: bool, *, now_ms: int) -> None:
        """Refuse a denied ``jti``. Anything but ``False`` counts as denied (fail closed)."""
        string_claim(claims, "jti")
        if state is not False:
            raise RevokedTokenError()

    def state_key(self, claims: Claims) -> str:
        """The ``jti`` claim: the same for every encoding and signature of one token."""
        return string_claim(claims, "jti")

    def revoke(self, state: bool, *, now_ms: int) -> bool:
        return True

    def retain_until(self, claims: Claims) -> int:
        """When the entry for this token may be dropped (its ``exp``, NumericDate seconds)."""
        if "exp" not in claims:
            raise MissingClaimError("exp")
        exp: object = claims["exp"]
        if type(exp) is float and math.isfinite(exp):
            exp = math.ceil(exp)  # a fractional exp rounds up: keep the entry long enough
        if type(exp) is not int or exp < 0:
            raise InvalidClaimError("exp")
        return exp
