"""The interface every JWT revocation strategy implements, and helpers they share.

A strategy is a pure decision over boundary-verified claims plus the *state* a port
fetched for them. The port (sync or async, SQL or Redis) lives in an adapter; the core
only says which state to fetch (:meth:`Strategy.state_key`), what to add to a token at
issue time (:meth:`Strategy.stamp`), whether to accept it (:meth:`Strategy.check`) and what
the state becomes when the user (or token) is revoked (:meth:`Strategy.revoke`).

Times: ``now_ms`` is milliseconds since the epoch, passed in; nothing here reads a clock.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from ...errors import ConfigurationError, InvalidClaimError, MissingClaimError
from ..claims import Claims

__all__ = ["REGISTERED_CLAIMS", "StateT", "Strategy", "merge_stamp", "string_claim"]

StateT = TypeVar("StateT")

# RFC 7519 §4.1: a stamp may add claims, never set one of these.
REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
_MAX_STRING_CLAIM = 1024  # as in claims.check_claims


class Strategy(Protocol[StateT]):
    """One revocation design for JWT access tokens, as a pure decision.

    ``StateT`` is what the port fetches for one token: a :class:`~sjti.UserKey` (sjti),
    the user's epoch in ms or ``None`` (epoch), "is this jti denied" (denylist), nothing
    (plain). Implementations are stateless and safe to share between threads.
    """

    @property
    def name(self) -> str:
        """Registry name: ``"sjti"``, ``"epoch"``, ``"denylist"``, ``"plain"``."""
        ...

    @property
    def needs_state(self) -> bool:
        """False when :meth:`check` ignores the state, so the port need not fetch it."""
        ...

    def stamp(self, claims: Claims, state: StateT, *, now_ms: int) -> Claims:
        """The claims to add at issue time. Never changes a claim already present."""
        ...

    def check(self, claims: Claims, state: StateT, *, now_ms: int) -> None:
        """The user-layer decision on boundary-verified claims; raises to refuse."""
        ...

    def state_key(self, claims: Claims) -> str:
        """Which state the port must fetch for these claims (a ``sub``, a ``jti``)."""
        ...

    def revoke(self, state: StateT, *, now_ms: int) -> StateT:
        """The state that refuses every token ``state`` used to accept."""
        ...


def string_claim(claims: Claims, name: str) -> str:
    """A required non-empty string claim, or the specific :class:`TokenError`."""
    if name not in claims:
        raise MissingClaimError(name)
    value: Any = claims[name]
    if type(value) is not str or not value or len(value) > _MAX_STRING_CLAIM:
        raise InvalidClaimError(name)
    return value


def merge_stamp(claims: Claims, added: Claims) -> Claims:
    """``claims`` plus a stamp's ``added`` claims; refuses to overwrite anything.

    Issuers call this (or do the same) so a stamp can never change a registered claim.
    """
    clash = added.keys() & claims.keys() or added.keys() & REGISTERED_CLAIMS
    if clash:
        raise ConfigurationError(f"stamp would overwrite claim: {min(clash)}")
    return {**claims, **added}
