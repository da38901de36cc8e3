"""The interface every contender implements, so each scenario runs them all alike.

A contender is one revocation design wired to a real state store: it issues tokens,
verifies them (DB-free boundary, then the full check against the store) and revokes.
Every method that reads the store raises :class:`~sjti.errors.BackendError` when the store
is gone, never accepts what it could not check.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

from sqlalchemy import Engine

from ._db import Dump

__all__ = ["Contender", "DeviceScope"]

# What signing one device out promises: that device's tokens only, or every token of the
# user (a design with one piece of state per user).
DeviceScope: TypeAlias = Literal["device", "user"]


class Contender(Protocol):
    """One strategy on one database."""

    @property
    def name(self) -> str:
        """The strategy's registry name (``sjti``, ``epoch``...)."""
        ...

    @property
    def backend(self) -> str:
        """Where the revocation state lives: ``sqlite``, ``pg`` or ``redis``."""
        ...

    @property
    def engine(self) -> Engine:
        """The SQL database (state, and the app's ``app_users`` table)."""
        ...

    @property
    def needs_state(self) -> bool:
        """False when the full check reads nothing (``plain``)."""
        ...

    def prepare(self) -> None:
        """Create this contender's tables (idempotent)."""

    def on(self, engine: Engine) -> Contender:
        """The same design with the same application secrets, on another database (a
        design keeping its state outside SQL also loses that store: the outage case)."""
        ...

    def peer(self) -> Contender:
        """Another node: the same design, secrets and stores, through its own connections
        (a second engine on the same database, a second client on the same Redis)."""
        ...

    def close(self) -> None:
        """Release this contender's connections (engine pool, store clients)."""

    def state_size(self) -> tuple[int, str]:
        """Bytes of revocation state, measured, and what they hold ("300 rows")."""
        ...

    def read_copy(self, scratch: Path) -> Dump:
        """A read-only copy of everything the stores hold (the attacker's loot)."""
        ...

    def commands_sent(self) -> int:
        """Commands sent so far to a non-SQL store (counted by a wrapped client); else 0."""
        ...

    def issue(self, users: Sequence[str]) -> list[str]:
        """One new token per entry of ``users`` (repeat an id for several tokens)."""
        ...

    def check_boundary(self, token: str) -> None:
        """The DB-free layer; raises :class:`~sjti.errors.TokenError` to refuse."""

    def verify(self, token: str) -> str:
        """Both layers, fetching the state from the store; the user id on success."""
        ...

    def verify_with_user_row(self, token: str) -> str:
        """As the app does it: load the user's row (one statement) and check with it."""
        ...

    def revoke_users(self, users: Sequence[str]) -> None:
        """Refuse every token issued so far to these users (a no-op where impossible)."""

    def revoke_token(self, token: str) -> bool:
        """Refuse this one token; False when the design has no per-token revocation."""
        ...

    def with_devices(self) -> Contender:
        """This design as it runs when the app tracks signed-in devices, on the same
        stores and prepared (``sjti``: key rows that list the user's devices; the others
        need no other layout and return themselves)."""
        ...

    def sign_in(self, user: str) -> str:
        """A new signed-in device of ``user``: its handle (a JWT design's ``sid`` claim,
        recorded where the design keeps devices; a session's token)."""
        ...

    def issue_on(self, user: str, device: str, count: int) -> list[str]:
        """Tokens for that device: ``count`` JWTs carrying its ``sid``; a session has
        exactly one token per device (its own)."""
        ...

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        """Sign that device out the way the design can and say what it promises
        (``device``, ``user``); None when the design cannot (nothing is done)."""
        ...
