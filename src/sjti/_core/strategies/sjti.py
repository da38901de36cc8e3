"""``sjti``: a MAC over every claim under the user's own key (the default strategy).

State: the user's :class:`~sjti.UserKey`, fetched by ``sub``. O(users), one key each.
Revoke the user: give them a new key; every token issued before fails at once.
Revoke one token: not possible at this granularity (use a per-session key for that).

With the application signing key alone an attacker can neither mint a token for a user
nor edit a captured one (``exp``, ``sub``, roles): the MAC does not match.
"""

from __future__ import annotations

from typing import Final

from ...errors import ConfigurationError
from ..binding import SJTI_CLAIM, UserKey, check_sjti, compute_sjti
from ..claims import Claims
from .base import string_claim

__all__ = ["SjtiStrategy"]


class SjtiStrategy:
    """State: :class:`~sjti.UserKey`. Stamp ``sjti``; check it in constant time."""

    __slots__ = ()
    name: Final = "sjti"
    needs_state: Final = True

    def stamp(self, claims: Claims, state: UserKey, *, now_ms: int) -> Claims:
        """``{"sjti": …}`` over all of ``claims``: stamp last, after every other claim."""
        if SJTI_CLAIM in claims:
            raise ConfigurationError(f"claims already carry {SJTI_CLAIM}")
        return {SJTI_CLAIM: compute_sjti(claims, state)}

    def check(self, claims: Claims, state: UserKey, *, now_ms: int) -> None:
        check_sjti(claims, state)

    def state_key(self, claims: Claims) -> str:
        return string_claim(claims, "sub")

    def revoke(self, state: UserKey, *, now_ms: int) -> UserKey:
        """A fresh random key; the old one (and every token under it) is gone."""
        return UserKey.generate()
