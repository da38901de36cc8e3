"""The user-secret store: one interface (sync and async), several implementations.

A store keeps, per user, the user key wrapped under the KEK ring (never in clear), a
version that grows with every rotation, and when it last rotated. Revocation = rotation:
a new random user key. Every revocation is committed before the call returns, recorded in
an audit trail, and announced to the ``after_commit`` listeners (the invalidation bus).

Implementations: :mod:`sjti.stores.memory` (examples and unit tests) and
:mod:`sjti.stores.sql` (SQLAlchemy: SQLite by default, PostgreSQL in production).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .._core.binding import UserKey
from ..errors import SjtiError

__all__ = [
    "AsyncSecretStore",
    "AuditRecord",
    "Cohort",
    "RevocationListener",
    "RevocationResult",
    "SecretStore",
    "UnknownUserError",
]

# Called after a revocation committed, with the ids whose keys changed. ``None`` means
# "too many to list: drop everything" (large cohorts).
RevocationListener = Callable[[Sequence[str] | None], None]


class UnknownUserError(SjtiError):
    """Revoking (or loading with ``create=False``) a user the store does not know."""

    def __init__(self) -> None:
        super().__init__("unknown user")


@dataclass(frozen=True, slots=True)
class Cohort:
    """A structured selection of users for incident response. Never raw SQL.

    Each field narrows the selection (AND). Which database column backs each field is set
    when the store is configured (see ``CohortColumns`` in :mod:`sjti.stores.sql`).
    ``equals`` covers further configured columns by name, e.g. ``{"plan": "free"}``.
    At least one criterion is required: an empty cohort would mean "everyone".
    """

    user_ids: frozenset[str] | None = None
    tenant: str | None = None
    role: str | None = None
    created_before: datetime | None = None
    last_login_before: datetime | None = None
    rotated_before: datetime | None = None
    equals: Mapping[str, str | int | bool] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return (
            self.user_ids is None
            and self.tenant is None
            and self.role is None
            and self.created_before is None
            and self.last_login_before is None
            and self.rotated_before is None
            and not self.equals
        )


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """What a revocation did (or, with ``dry_run``, would do)."""

    count: int
    user_ids: tuple[str, ...]  # sorted; may be truncated for huge cohorts (see ``truncated``)
    dry_run: bool
    audit_id: int | None  # the audit record written; None for a dry run
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str | None
    reason: str | None
    kind: str  # "user", "users", "cohort", "reuse_detected", ...
    count: int
    detail: str | None  # a short, secret-free description of the selection


class SecretStore(Protocol):
    """Synchronous store. Every method is one transaction."""

    def load(self, user_id: str) -> UserKey | None:
        """The user's key, or ``None`` if the user has no secret (unknown or not yet set)."""

    def ensure(self, user_id: str) -> UserKey:
        """The user's key, creating it atomically on first use (lazy migration path)."""

    def revoke(
        self, user_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult:
        """Rotate one user's key. :class:`UnknownUserError` if the user has no secret."""

    def revoke_many(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        """Rotate several users' keys in one transaction; unknown ids are ignored."""

    def revoke_cohort(
        self,
        cohort: Cohort,
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        """Rotate the keys of every user the cohort selects, in one transaction."""

    def audit_log(self, *, limit: int = 100) -> list[AuditRecord]:
        """Newest first."""

    def add_listener(self, listener: RevocationListener) -> None:
        """Call ``listener`` after each committed revocation."""


class AsyncSecretStore(Protocol):
    """The same contract for asyncio callers."""

    async def load(self, user_id: str) -> UserKey | None: ...

    async def ensure(self, user_id: str) -> UserKey: ...

    async def revoke(
        self, user_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult: ...

    async def revoke_many(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult: ...

    async def revoke_cohort(
        self,
        cohort: Cohort,
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult: ...

    async def audit_log(self, *, limit: int = 100) -> list[AuditRecord]: ...

    def add_listener(self, listener: RevocationListener) -> None: ...
