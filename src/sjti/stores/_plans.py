"""What each store operation does, written once for the sync and the async store.

A *plan* is a generator: it yields the operations to run (:class:`Fetch`, :class:`Execute`)
and receives their rows back; every decision (unknown user, dry run, what to rotate, what
to announce) lives here. A :class:`Job` pairs a plan with how its transaction opens. The
stores in :mod:`sjti.stores.sql` and :mod:`sjti.stores.sql_async` only drive jobs: open a
connection, run each operation, commit. This is the sans-I/O shape httpx and h11 use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from ..errors import ConfigurationError
from . import _eventlog as log
from . import _revocation as rv
from . import _statements as st
from ._ops import Execute, Fetch, Job, Op, Plan, Rows
from .base import AuditRecord, Cohort, RevocationResult, UnknownUserError

__all__ = [
    "AlsoRevoke",
    "Execute",
    "Fetch",
    "Job",
    "Op",
    "Rows",
    "audit_log",
    "check_batch_size",
    "count_rewrap",
    "describe_rewrap",
    "ensure",
    "open_found",
    "revoke",
    "revoke_cohort",
    "revoke_many",
    "revoke_user",
    "rewrap_batch",
]

REWRAP_KIND = "kek_rewrap"

T = TypeVar("T")


def _write(ctx: st.Context, plan: Plan[T]) -> Job[T]:
    return Job(plan, write=True, begin=st.begin_write(ctx))


def _read(plan: Plan[T]) -> Job[T]:
    return Job(plan, write=False)


def _open(ctx: st.Context, user_id: str, rows: Rows) -> bytes | None:
    """The unwrapped secret of the (at most one) row, ``None`` if there is no secret."""
    if not rows or rows[0]["wrapped"] is None:
        return None
    row = rows[0]
    return rv.open_secret(ctx.ring, user_id, row["wrapped"], row.get("kek_id"))


def open_found(ctx: st.Context, user_id: str, row: Sequence[Any] | None) -> bytes | None:
    """The secret in the hot lookup's row ``(user_id, wrapped[, kek_id])``, ``None`` if the
    row is missing or holds no secret (:mod:`sjti.stores._lookup` runs the statement)."""
    if row is None or row[1] is None:
        return None
    return rv.open_secret(ctx.ring, user_id, row[1], row[2] if len(row) > 2 else None)


def ensure(ctx: st.Context, user_id: str) -> Job[bytes]:
    """Create the secret if absent, then read whichever secret won (ours or a racer's).

    Stores run :func:`load` first and this only on a miss, so the write lock is taken
    only on a user's first token.
    """

    def plan() -> Plan[bytes]:
        id_value = st.coerce_id(ctx.target, user_id)
        if id_value is None:
            raise UnknownUserError()
        wrapped, now = rv.new_wrapped(ctx.ring, user_id), ctx.clock()
        if ctx.target.owned:
            yield Execute(st.insert_secret_if_absent(ctx, id_value, wrapped, now))
        else:
            yield Execute(st.set_secret_if_null(ctx, id_value, wrapped, now))
        secret = _open(ctx, user_id, (yield Fetch(st.select_secret(ctx, id_value))))
        if secret is None:  # the app table has no such user: sjti never creates users
            raise UnknownUserError()
        return secret

    return _write(ctx, plan())


# Statements a caller adds to a revocation's transaction, given the selected ids (as the
# id column stores them): a sub-plan, e.g. the service revoking the same users' refresh
# tokens. It runs after the rotation, before the audit and event rows.
AlsoRevoke = Callable[[Sequence[Any]], Plan[None]]


def revoke(
    ctx: st.Context,
    cohort: Cohort,
    *,
    kind: str,
    detail: str,
    actor: str | None,
    reason: str | None,
    dry_run: bool,
    required: bool = False,
    also: AlsoRevoke | None = None,
) -> Job[RevocationResult]:
    """Rotate every selected user's key, run ``also``, audit, log the event (and NOTIFY it);
    one transaction.

    ``required``: raise :class:`UnknownUserError` when nobody is selected (``revoke``).
    A dry run only reads: no lock, no rotation, no event, no audit row.
    """
    rv.check_cohort(cohort)
    statements = st.select_targets(ctx, cohort, lock=not dry_run)  # CohortError early

    def plan() -> Plan[RevocationResult]:
        found: list[Any] = []
        for statement in statements:
            found.extend(row["user_id"] for row in (yield Fetch(statement)))
        raw_ids = list(dict.fromkeys(found))  # a joined table may repeat an id
        if required and not raw_ids:
            raise UnknownUserError()
        if dry_run:
            return rv.result_for(map(str, raw_ids), dry_run=True, audit_id=None)
        now = ctx.clock()
        params = [
            st.rotate_params(ctx, raw, rv.new_wrapped(ctx.ring, str(raw)), now) for raw in raw_ids
        ]
        for batch in st.rotate_batches(params):
            yield Execute(st.rotate(ctx), batch)
        if also is not None and raw_ids:
            yield from also(raw_ids)
        ids = sorted(map(str, raw_ids))
        audit_rows = yield Fetch(
            st.insert_audit(
                ctx, at=now, actor=actor, reason=reason, kind=kind, count=len(ids), detail=detail
            )
        )
        audit_id = int(audit_rows[0]["id"])
        event_id = None
        if ids:
            # Last, so the events lock is held only until the commit that follows.
            event_id = yield from log.append(
                ctx, kind=kind, user_ids=rv.listed(ids), count=len(ids), audit_id=audit_id, now=now
            )
        result = rv.result_for(ids, dry_run=False, audit_id=audit_id)
        return dataclasses.replace(result, event_id=event_id)

    return _write(ctx, plan()) if not dry_run else _read(plan())


def revoke_user(
    ctx: st.Context,
    user_id: str,
    *,
    actor: str | None,
    reason: str | None,
    also: AlsoRevoke | None = None,
) -> Job[RevocationResult]:
    return revoke(
        ctx,
        Cohort(user_ids=frozenset({user_id})),
        kind="user",
        detail=rv.describe_user(user_id),
        actor=actor,
        reason=reason,
        dry_run=False,
        required=True,
        also=also,
    )


def revoke_many(
    ctx: st.Context,
    user_ids: Iterable[str],
    *,
    actor: str | None,
    reason: str | None,
    dry_run: bool,
    also: AlsoRevoke | None = None,
) -> Job[RevocationResult]:
    ids = frozenset(user_ids)
    return revoke(
        ctx,
        Cohort(user_ids=ids),
        kind="users",
        detail=rv.describe_ids(len(ids)),
        actor=actor,
        reason=reason,
        dry_run=dry_run,
        also=also,
    )


def revoke_cohort(
    ctx: st.Context,
    cohort: Cohort,
    *,
    actor: str | None,
    reason: str | None,
    dry_run: bool,
    also: AlsoRevoke | None = None,
) -> Job[RevocationResult]:
    return revoke(
        ctx,
        cohort,
        kind="cohort",
        detail=rv.describe_cohort(cohort),
        actor=actor,
        reason=reason,
        dry_run=dry_run,
        also=also,
    )


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError("batch_size must be a positive integer")


def rewrap_batch(ctx: st.Context, batch_size: int, *, actor: str | None) -> Job[int]:
    """Move up to ``batch_size`` secrets to the primary KEK; one transaction, one audit row.

    Returns how many moved (0: nothing left). The user key is unchanged, so there is no
    version bump, no NOTIFY and no listener call. A secret that does not open raises
    :class:`~sjti.errors.UnwrapError` and the whole batch rolls back (fail closed).
    """

    def plan() -> Plan[int]:
        rows = yield Fetch(st.select_rewrap(ctx, batch_size))
        if not rows:
            return 0
        params = []
        for row in rows:
            user_id = str(row["user_id"])
            secret = rv.open_secret(ctx.ring, user_id, row["wrapped"], row.get("kek_id"))
            params.append(st.rewrap_params(ctx, row["user_id"], ctx.ring.wrap(user_id, secret)))
        yield Execute(st.rewrap(ctx), params)
        yield Fetch(
            st.insert_audit(
                ctx,
                at=ctx.clock(),
                actor=actor,
                reason=None,
                kind=REWRAP_KIND,
                count=len(params),
                detail=describe_rewrap(ctx),
            )
        )
        return len(params)

    return _write(ctx, plan())


def describe_rewrap(ctx: st.Context) -> str:
    """The audit detail: the KEK ids only, never key material."""
    return f"to kek {ctx.ring.primary.kid}"


def count_rewrap(ctx: st.Context, kek_id: str | None) -> Job[int]:
    def plan() -> Plan[int]:
        rows = yield Fetch(st.count_rewrap(ctx, kek_id))
        return int(rows[0]["n"])

    return _read(plan())


def audit_log(ctx: st.Context, limit: int) -> Job[list[AuditRecord]]:
    def plan() -> Plan[list[AuditRecord]]:
        rows = yield Fetch(st.select_audit(ctx, limit))
        return [
            AuditRecord(
                id=int(row["id"]),
                at=row["at"],
                actor=row["actor"],
                reason=row["reason"],
                kind=row["kind"],
                count=int(row["count"]),
                detail=row["detail"],
            )
            for row in rows
        ]

    return _read(plan())


def driver_error(exc: Exception) -> BaseException | None:
    """The DBAPI error behind a SQLAlchemy one, to chain instead of it: SQLAlchemy's message
    lists the statement's parameters (wrapped secrets among them)."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else None
