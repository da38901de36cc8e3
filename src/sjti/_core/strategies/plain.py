"""``plain``: no revocation at all, the baseline the others are measured against.

A token is good until ``exp``; the boundary layer is the whole check. No state, no round
trip. Revoking is not possible: :meth:`PlainStrategy.revoke` changes nothing, honestly.
"""

from __future__ import annotations

from typing import Final

from ..claims import Claims
from .base import string_claim

__all__ = ["PlainStrategy"]


class PlainStrategy:
    """State: ``None``. Stamps nothing, refuses nothing."""

    __slots__ = ()
    name: Final = "plain"
    needs_state: Final = False

    def stamp(self, claims: Claims, state: None, *, now_ms: int) -> Claims:
        return {}

    def check(self, claims: Claims, state: None, *, now_ms: int) -> None:
        """Accept: whatever passed the boundary is good until ``exp``."""

    def state_key(self, claims: Claims) -> str:
        """The ``sub``; there is nothing to fetch for it (``needs_state`` is False)."""
        return string_claim(claims, "sub")

    def revoke(self, state: None, *, now_ms: int) -> None:
        """Nothing to change: a plain token lives until ``exp`` whatever happens."""
