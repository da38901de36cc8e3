"""Decisions every store shares, with no I/O: cohort checks, audit wording, results,
listener announcements, and opening or making wrapped secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from .._core.wrapping import KekRing, WrappedSecret, generate_user_key
from .base import (
    MAX_LISTED_IDS,
    Acknowledgement,
    Cohort,
    CohortError,
    EventListener,
    ListenerError,
    NodeRecord,
    RevocationEvent,
    RevocationListener,
    RevocationResult,
)

logger = logging.getLogger("sjti.stores")

__all__ = [
    "acknowledgement",
    "announce",
    "check_cohort",
    "describe_cohort",
    "describe_ids",
    "describe_user",
    "listed",
    "new_wrapped",
    "open_secret",
    "result_for",
    "utc_now",
]


def utc_now() -> datetime:
    """The default store clock: aware UTC."""
    return datetime.now(UTC)


def check_cohort(cohort: Cohort) -> None:
    """Refuse what cannot be selected safely, before any query runs.

    An empty cohort would select everyone. A naive datetime would be read in whatever
    time zone the database session happens to use.
    """
    if cohort.is_empty():
        raise CohortError("a cohort needs at least one criterion")
    for name in ("created_before", "last_login_before", "rotated_before"):
        value = getattr(cohort, name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise CohortError(f"cohort {name} must be a timezone-aware datetime")


def describe_cohort(cohort: Cohort) -> str:
    """A secret-free summary of the criteria, for the audit trail."""
    parts = [
        f"{name}={getattr(cohort, name)}"
        for name in ("tenant", "role", "created_before", "last_login_before", "rotated_before")
        if getattr(cohort, name) is not None
    ]
    if cohort.user_ids is not None:
        parts.append(f"user_ids=<{len(cohort.user_ids)}>")
    parts.extend(f"{k}={v}" for k, v in sorted(cohort.equals.items()))
    return ", ".join(parts)


def describe_user(user_id: str) -> str:
    return f"user_id={user_id}"


def describe_ids(requested: int) -> str:
    return f"{requested} ids requested"


def listed(user_ids: Sequence[str]) -> Sequence[str] | None:
    """The ids to announce, or ``None`` ("drop everything") above MAX_LISTED_IDS."""
    return user_ids if len(user_ids) <= MAX_LISTED_IDS else None


def result_for(user_ids: Iterable[str], *, dry_run: bool, audit_id: int | None) -> RevocationResult:
    """The result for these ids: sorted, listing at most MAX_LISTED_IDS of them."""
    ids = sorted(user_ids)
    return RevocationResult(
        count=len(ids),
        user_ids=tuple(ids[:MAX_LISTED_IDS]),
        dry_run=dry_run,
        audit_id=audit_id,
        truncated=len(ids) > MAX_LISTED_IDS,
    )


def announce(
    listeners: Sequence[RevocationListener],
    event_listeners: Sequence[EventListener],
    result: RevocationResult,
    kind: str,
) -> None:
    """Tell every listener what changed; called only after the commit.

    Id listeners (this process's cache) run first. Every listener runs even if one raises,
    so one broken subscriber cannot keep the others' caches stale; the first failure of an
    id listener then surfaces as :class:`ListenerError`. Event listeners (the relay to the
    bus) never fail a revocation: their errors are logged, the event stays in the log.
    """
    if result.dry_run or result.count == 0:
        return
    ids: Sequence[str] | None = None if result.truncated else result.user_ids
    failure: Exception | None = None
    for listener in listeners:
        try:
            listener(ids)
        except Exception as exc:  # reported below, after every listener ran
            failure = failure or exc
    if result.event_id is not None:
        event = RevocationEvent(result.event_id, kind, None if ids is None else tuple(ids))
        for event_listener in event_listeners:
            try:
                event_listener(event)
            except Exception as exc:  # the log is the truth; the relay retries
                logger.warning("event listener failed: %s", type(exc).__name__)
    if failure is not None:
        raise ListenerError(result) from failure


def acknowledgement(event_id: int, nodes: Sequence[NodeRecord]) -> Acknowledgement:
    """Which live nodes have applied ``event_id`` (their watermark reached it)."""
    done = tuple(n.id for n in nodes if n.watermark >= event_id)
    pending = tuple(n.id for n in nodes if n.watermark < event_id)
    return Acknowledgement(event_id, done, pending)


def new_wrapped(ring: KekRing, user_id: str) -> WrappedSecret:
    """A fresh random user key, wrapped under the ring's primary KEK."""
    return ring.wrap(user_id, generate_user_key())


def open_secret(ring: KekRing, user_id: str, text: str, kek_id: str | None = None) -> bytes:
    """Unwrap a stored text form; any inconsistency fails closed with UnwrapError.

    ``kek_id`` is the separate column of the owned table: it must agree with the id
    inside the text, or the row was edited by hand.
    """
    return ring.unwrap_str(user_id, text, kek_id=kek_id)
