"""The user-secret store: one interface (sync and async), several implementations.

A store keeps, per user, the user key wrapped under the KEK ring (never in clear), a
version that grows with every rotation, and when it last rotated. Revocation = rotation:
a new random user key. Every revocation is committed before the call returns, recorded in
an audit trail, and announced to the listeners (the invalidation bus) after the commit.

Implementations: :mod:`sjti.stores.memory` (examples and unit tests),
:mod:`sjti.stores.sql` and :mod:`sjti.stores.sql_async` (SQLAlchemy: SQLite by default,
PostgreSQL in production).

Errors raised by stores::

    UnknownUserError    (SjtiError)                      revoke/ensure of a user the store lacks
    CohortError         (ConfigurationError, ValueError) empty cohort, field with no column
    ListenerError       (BackendError)                   committed, but a listener failed
    UnwrapError         (SecretError)                    a stored secret does not open
    BackendError                                         the database failed: fail closed
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from .._core.binding import UserKey
from ..errors import BackendError, ConfigurationError, SjtiError

__all__ = [
    "MAX_LISTED_IDS",
    "NODE_TTL",
    "Acknowledgement",
    "AsyncSecretStore",
    "AuditRecord",
    "Cohort",
    "CohortError",
    "DeviceSignIn",
    "EventListener",
    "EventPage",
    "ListenerError",
    "NodeRecord",
    "RevocationEvent",
    "RevocationListener",
    "RevocationResult",
    "SecretStore",
    "UnknownUserError",
]

# Above this many ids a revocation is announced as "everyone" (``None``) and the result
# lists only the first ids: a bus message or a return value must stay small.
MAX_LISTED_IDS: Final = 10_000

# A node that has not heartbeaten for this long is not live: acknowledged revocations stop
# waiting for it. Longer than any bus's trust lease (2 x its health check interval), so a
# node that fell silent has stopped trusting its cache before it stops counting.
NODE_TTL: Final = 5.0

# Called after a revocation committed, with the ids whose keys changed. ``None`` means
# "too many to list: drop everything" (more than MAX_LISTED_IDS ids).
RevocationListener = Callable[[Sequence[str] | None], object]


class UnknownUserError(SjtiError):
    """Revoking a user who has no secret, or ``ensure`` of a user the app table lacks."""

    def __init__(self) -> None:
        super().__init__("unknown user")


class CohortError(ConfigurationError, ValueError):
    """A cohort the store cannot select safely: empty, or a field with no configured column."""


class ListenerError(BackendError):
    """The revocation committed, but a listener (e.g. the bus publisher) raised.

    The keys did change: ``result`` says what was done. Retrying is harmless (another
    rotation) and announces again.
    """

    def __init__(self, result: RevocationResult) -> None:
        super().__init__("revocation committed but a listener failed")
        self.result = result


@dataclass(frozen=True, slots=True)
class Cohort:
    """A structured selection of users for incident response. Never raw SQL.

    Each field narrows the selection (AND). Which database column backs each field is set
    when the store is configured (see ``CohortColumns`` in :mod:`sjti.stores.layouts`).
    ``equals`` covers further configured columns by name, e.g. ``{"plan": "free"}``.
    At least one criterion is required: an empty cohort would mean "everyone". A user
    whose ``created_at``/``last_login_at`` is NULL is never "before" anything.
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
    # Sorted. Holds at most MAX_LISTED_IDS ids; ``truncated`` says some were left out
    # (``count`` is always the full number).
    user_ids: tuple[str, ...]
    dry_run: bool
    audit_id: int | None  # the audit record written; None for a dry run
    truncated: bool = False
    event_id: int | None = None  # the revocation event written (the bus relays it)
    # With ``wait="all"``: which live nodes applied the event before the timeout.
    acknowledgement: Acknowledgement | None = None


@dataclass(frozen=True, slots=True)
class DeviceSignIn:
    """A device signed in: its id (the tokens' ``sid``), the user's key (which now lists
    it) and the devices the sign-in signed out to stay within ``max_devices``."""

    sid: str
    key: UserKey
    signed_out: tuple[str, ...] = ()
    event_id: int | None = None  # the sign-in event (SQL stores): caches learn the device
    acknowledgement: Acknowledgement | None = None  # with ``wait="all"``


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One row of the revocation event log: what every node must drop.

    ``user_ids`` ``None`` means every user (a selection too large to list). Ids are
    gapless and commit in order (see :mod:`sjti.stores._eventlog`).
    """

    id: int
    kind: str
    user_ids: tuple[str, ...] | None
    at: datetime | None = None


# Called after a revocation committed, with its event (the relay to the bus). Must not
# raise: a failure to publish never undoes or fails a committed revocation.
EventListener = Callable[[RevocationEvent], object]


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events after a watermark, and the log's bounds when they were read.

    ``oldest``: the smallest id still retained (``None``: empty log); if it is above
    ``watermark + 1`` the events in between were pruned and the reader must clear.
    ``latest``: the largest id (0 for an empty log).
    """

    events: tuple[RevocationEvent, ...]
    oldest: int | None
    latest: int


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node that heartbeats its watermark (the last event id it applied)."""

    id: str
    watermark: int
    seen_at: datetime
    started_at: datetime
    info: str | None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who applied an event: ``pending`` lists the live nodes that had not by the timeout."""

    event_id: int
    acknowledged: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.pending


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str | None
    reason: str | None
    kind: str  # "user", "users", "cohort"
    count: int
    detail: str | None  # a short, secret-free description of the selection


class SecretStore(Protocol):
    """Synchronous store. Every method is one transaction."""

    def load(self, user_id: str) -> UserKey | None:
        """The user's key, or ``None`` if the user has no secret (unknown or not yet set).

        A stored secret that does not open raises :class:`~sjti.errors.UnwrapError`.
        """

    def load_secret(self, user_id: str) -> bytes | None:
        """The raw 32-byte key (what caches keep), else as :meth:`load`."""

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
        """Call ``listener`` after each committed revocation that changed any key."""

    def rewrap(self, batch_size: int = 500, *, actor: str | None = None) -> Iterator[int]:
        """KEK rotation: move every secret not under the ring's primary KEK to it.

        Yields the count moved per batch; each batch is one transaction with one audit row
        (kind ``kek_rewrap``). User keys, versions and rotated_at do not change, so nobody
        is logged out and nothing is announced. Resumable: a later run moves what is left.
        A secret that does not open raises :class:`~sjti.errors.UnwrapError`.
        """


class AsyncSecretStore(Protocol):
    """The same contract for asyncio callers. Listeners stay synchronous: keep them quick."""

    async def load(self, user_id: str) -> UserKey | None: ...

    async def load_secret(self, user_id: str) -> bytes | None: ...

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

    def rewrap(self, batch_size: int = 500, *, actor: str | None = None) -> AsyncIterator[int]:
        """``async for moved in store.rewrap(): ...`` (see :meth:`SecretStore.rewrap`)."""
