"""``epoch``: a per-user "not before" (the critics' ``iat_not_before`` column).

State: the user's revocation epoch in milliseconds, or ``None`` if never revoked; fetched by
``sub``. O(users), one integer each. Revoke the user: set the epoch to now.

**The same-second race.** ``iat`` has one-second precision. With a naive ``iat < epoch_s``
test, a token issued at 1000.200 s survives a revocation at 1000.500 s (both are "second
1000"); refusing the whole second (``iat <= epoch_s``) instead also refuses the fresh token
the user gets at 1000.700 s, right after the revocation. So the issuer stamps ``iat_ms``
(integer milliseconds, consistent with ``iat``) and :meth:`EpochStrategy.check` refuses
``iat_ms <= epoch_ms``: a token minted in the very millisecond of the revocation is refused
(fail closed), one minted a millisecond later is accepted. A token without ``iat_ms`` is
refused.

Honest weaknesses:

* **Clock skew.** ``iat_ms`` comes from the issuing node's clock, the epoch from the revoking
  node's. If the revoking node's clock lags by *d* ms, tokens minted in the *d* ms before
  the revocation carry an ``iat_ms`` above the epoch and survive it. :meth:`revoke` never
  moves an epoch backwards, but it cannot know the skew; keep clocks disciplined (NTP) or
  revoke at ``now_ms + max_skew``, which refuses fresh logins for that long.
* **It binds nothing.** The epoch is a number, not a key. With the application signing
  key alone an attacker mints a token for *any* user, with any ``iat_ms``: one stamped in
  the future survives every revocation made before that instant (the boundary refuses it
  as not yet valid only until its ``iat`` arrives). Contrast ``sjti``, whose MAC needs the
  user's key.
"""

from __future__ import annotations

from typing import Any, Final

from ...errors import ConfigurationError, InvalidClaimError, MissingClaimError, RevokedTokenError
from ..claims import Claims
from .base import string_claim

__all__ = ["IAT_MS_CLAIM", "EpochStrategy"]

IAT_MS_CLAIM: Final = "iat_ms"
# NumericDate's upper bound (9999-12-31T23:59:59Z) in milliseconds, as in claims.py.
_MAX_MS: Final = 253_402_300_799_999


def _millis(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_MS:  # bool is refused too
        raise ConfigurationError(f"{what} must be integer milliseconds since the epoch")
    return value


class EpochStrategy:
    """State: the user's epoch in ms, or ``None``. Refuse ``iat_ms <= epoch``."""

    __slots__ = ()
    name: Final = "epoch"
    needs_state: Final = True

    def stamp(self, claims: Claims, state: int | None, *, now_ms: int) -> Claims:
        """``{"iat_ms": now_ms}``; ``claims["iat"]`` must be the same instant in seconds."""
        now_ms = _millis(now_ms, "now_ms")
        if IAT_MS_CLAIM in claims:
            raise ConfigurationError(f"claims already carry {IAT_MS_CLAIM}")
        if claims.get("iat") != now_ms // 1000:
            raise ConfigurationError("iat must be now_ms // 1000 when stamping iat_ms")
        return {IAT_MS_CLAIM: now_ms}

    def check(self, claims: Claims, state: int | None, *, now_ms: int) -> None:
        """Refuse a token issued at or before the user's epoch.

        ``iat_ms`` must be an integer that agrees with ``iat`` (so the boundary's ``iat``
        checks bound it too); ``now_ms`` is not needed: the boundary checked the time.
        """
        if IAT_MS_CLAIM not in claims:
            raise MissingClaimError(IAT_MS_CLAIM)
        if "iat" not in claims:
            raise MissingClaimError("iat")
        issued_ms: Any = claims[IAT_MS_CLAIM]
        if type(issued_ms) is not int or not 0 <= issued_ms <= _MAX_MS:
            raise InvalidClaimError(IAT_MS_CLAIM)
        if claims["iat"] != issued_ms // 1000:
            raise InvalidClaimError(IAT_MS_CLAIM)
        if state is None:
            return
        if issued_ms <= _millis(state, "epoch"):
            raise RevokedTokenError()

    def state_key(self, claims: Claims) -> str:
        return string_claim(claims, "sub")

    def revoke(self, state: int | None, *, now_ms: int) -> int:
        """The epoch after a revocation at ``now_ms``; never earlier than ``state``."""
        now_ms = _millis(now_ms, "now_ms")
        return now_ms if state is None else max(_millis(state, "epoch"), now_ms)
