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

from .._core.binding import USER_KEY_SIZE, UserKey, device_id_bytes, devices_record
from ..errors import BackendError, ConfigurationError
from . import _devices as devs
from . import _eventlog as log
from . import _revocation as rv
from . import _statements as st
from ._ops import Count, Execute, Fetch, Job, Op, Plan, Rows
from .base import (
    MAX_LISTED_IDS,
    AuditRecord,
    Cohort,
    DeviceSignIn,
    RevocationResult,
    UnknownUserError,
)

__all__ = [
    "AlsoRevoke",
    "AlsoSignIn",
    "Batch",
    "Batches",
    "Count",
    "Execute",
    "Fetch",
    "Job",
    "Op",
    "RecordBatch",
    "Rows",
    "audit_log",
    "check_batch_size",
    "count_rewrap",
    "describe_rewrap",
    "devices_of",
    "ensure",
    "forget",
    "open_found",
    "preview_batches",
    "revoke",
    "revoke_batch",
    "revoke_cohort",
    "revoke_device",
    "revoke_many",
    "revoke_user",
    "rewrap_batch",
    "sign_in",
]

REWRAP_KIND = "kek_rewrap"

T = TypeVar("T")


def _write(ctx: st.Context, plan: Plan[T]) -> Job[T]:
    return Job(plan, write=True, begin=st.begin_write(ctx))


def _read(plan: Plan[T]) -> Job[T]:
    return Job(plan, write=False)


def _open(ctx: st.Context, user_id: str, rows: Rows) -> bytes | None:
    """The key record of the (at most one) row (the unwrapped secret, and the devices if
    tracked), ``None`` if there is no secret."""
    if not rows or rows[0]["wrapped"] is None:
        return None
    row = rows[0]
    secret = rv.open_secret(ctx.ring, user_id, row["wrapped"], row.get("kek_id"))
    return _record(secret, row["devices"])


def _record(secret: bytes, devices: str | None) -> bytes:
    parsed = devs.parse_column(devices)
    return secret if parsed is None else devices_record(secret, parsed)


def open_found(ctx: st.Context, user_id: str, row: Sequence[Any] | None) -> bytes | None:
    """The key record in the hot lookup's row ``(user_id, wrapped, devices[, kek_id])``,
    ``None`` if the row is missing or holds no secret (:mod:`sjti.stores._lookup` runs
    the statement)."""
    if row is None or row[1] is None:
        return None
    secret = rv.open_secret(ctx.ring, user_id, row[1], row[3] if len(row) > 3 else None)
    return _record(secret, row[2])


def ensure(ctx: st.Context, user_id: str) -> Job[bytes]:
    """Create the secret if absent, then read whichever secret won (ours or a racer's).

    Stores run :func:`load` first and this only on a miss, so the write lock is taken
    only on a user's first token.
    """

    def plan() -> Plan[bytes]:
        *_, record = yield from _key_made(ctx, user_id, lock=False)
        return record

    return _write(ctx, plan())


def _key_made(ctx: st.Context, user_id: str, *, lock: bool) -> Plan[tuple[Any, Rows, bytes]]:
    """Inside a write: the user's key made if absent (the first writer wins), then its row
    read (``lock``: for update) -> (id as stored, rows, key record)."""
    id_value = st.coerce_id(ctx.target, user_id)
    if id_value is None:
        raise UnknownUserError()
    wrapped, now = rv.new_wrapped(ctx.ring, user_id), ctx.clock()
    if ctx.target.owned:
        yield Execute(st.insert_secret_if_absent(ctx, id_value, wrapped, now))
    else:
        yield Execute(st.set_secret_if_null(ctx, id_value, wrapped, now))
    rows = yield Fetch(st.select_secret(ctx, id_value, lock=lock))
    record = _open(ctx, user_id, rows)
    if record is None:  # the app table has no such user: sjti never creates users
        raise UnknownUserError()
    return id_value, rows, record


def _logged(
    ctx: st.Context,
    ids: Sequence[str],
    *,
    kind: str,
    audit: tuple[str, str | None, str | None, str] | None,
    now: Any,
) -> Plan[RevocationResult]:
    """The audit row (``(kind, actor, reason, detail)``; ``None``: none) and the event row
    (``kind``) of a change to ``ids``; the result that says so. Last in a write."""
    audit_id = None
    if audit is not None:
        audit_kind, actor, reason, detail = audit
        rows = yield Fetch(
            st.insert_audit(
                ctx,
                at=now,
                actor=actor,
                reason=reason,
                kind=audit_kind,
                count=len(ids),
                detail=detail,
            )
        )
        audit_id = int(rows[0]["id"])
    event_id = yield from log.append(
        ctx, kind=kind, user_ids=rv.listed(ids), count=len(ids), audit_id=audit_id, now=now
    )
    result = rv.result_for(ids, dry_run=False, audit_id=audit_id)
    return dataclasses.replace(result, event_id=event_id)


# Statements a caller adds to a sign-in's transaction, given the user's id (as the id
# column stores it) and the devices the sign-in signed out: e.g. the service creating the
# device's refresh family and ending the signed-out ones. It may raise to roll back.
AlsoSignIn = Callable[[Sequence[Any], Sequence[str]], Plan[None]]


def sign_in(
    ctx: st.Context,
    user_id: str,
    sid: str,
    max_devices: int,
    also: AlsoSignIn | None = None,
) -> Job[tuple[DeviceSignIn, RevocationResult]]:
    """A device signs in: the user's key made if absent, ``sid`` added to the device list
    (the oldest signed out past ``max_devices``, audited), ``also``, and an event, since
    every node's cached record must learn the new device. One transaction, the row
    locked."""
    devs.check_max(max_devices)
    device_id_bytes(sid)

    def plan() -> Plan[tuple[DeviceSignIn, RevocationResult]]:
        id_value, rows, record = yield from _key_made(ctx, user_id, lock=True)
        change = devs.sign_in(devs.parse_column(rows[0]["devices"]), sid, max_devices)
        yield Execute(st.set_devices(ctx, id_value, devs.column_text(change.devices)))
        if also is not None:
            yield from also([id_value], change.signed_out)
        # Audited only when the limit signed devices out; the event always (caches must
        # learn the new device). Its audit row, if any, is kind "device".
        limit = (
            "device",
            None,
            "device limit",
            devs.describe_limit(user_id, len(change.signed_out)),
        )
        result = yield from _logged(
            ctx,
            [user_id],
            kind="sign_in",
            audit=limit if change.signed_out else None,
            now=ctx.clock(),
        )
        key = UserKey(record[:USER_KEY_SIZE], change.devices)
        return DeviceSignIn(sid, key, change.signed_out, event_id=result.event_id), result

    return _write(ctx, plan())


def revoke_device(
    ctx: st.Context,
    user_id: str,
    sid: str,
    *,
    actor: str | None,
    reason: str | None,
    also: AlsoRevoke | None = None,
) -> Job[RevocationResult]:
    """Sign one device out: ``sid`` off the user's list, ``also`` (the service ends the
    device's refresh family), the audit and the event rows; one transaction. A device that
    is not signed in changes nothing (count 0, no audit, no event)."""

    def plan() -> Plan[RevocationResult]:
        id_value = st.coerce_id(ctx.target, user_id)
        nothing = rv.result_for((), dry_run=False, audit_id=None)
        if id_value is None:
            return nothing
        rows = yield Fetch(st.select_secret(ctx, id_value, lock=True))
        if not rows:
            return nothing
        change = devs.sign_out(devs.parse_column(rows[0]["devices"]), sid)
        if not change.signed_out:
            return nothing
        yield Execute(st.set_devices(ctx, id_value, devs.column_text(change.devices)))
        if also is not None:
            yield from also([id_value])
        audit = ("device", actor, reason, devs.describe_device(user_id, sid))
        return (yield from _logged(ctx, [user_id], kind="device", audit=audit, now=ctx.clock()))

    return _write(ctx, plan())


def forget(
    ctx: st.Context, user_ids: Sequence[str], *, actor: str | None, reason: str | None
) -> Job[RevocationResult]:
    """Users deleted by the application (their rows are gone): an audit row and an event
    listing them, so every node drops them from its cache now rather than at the entry's
    age. Nothing to rotate: a deleted user's key no longer exists."""
    ids = sorted(set(user_ids))

    def plan() -> Plan[RevocationResult]:
        if not ids:
            return rv.result_for((), dry_run=False, audit_id=None)
        audit = ("deleted", actor, reason, rv.describe_ids(len(ids)))
        return (yield from _logged(ctx, ids, kind="deleted", audit=audit, now=ctx.clock()))

    return _write(ctx, plan())


def devices_of(ctx: st.Context, user_id: str) -> Job[list[str] | None]:
    """The user's signed-in devices, oldest first (``None``: not tracked or no user)."""

    def plan() -> Plan[list[str] | None]:
        id_value = st.coerce_id(ctx.target, user_id)
        if id_value is None:
            return None
        rows = yield Fetch(st.select_secret(ctx, id_value))
        return devs.parse_column(rows[0]["devices"]) if rows else None

    return _read(plan())


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
        return (
            yield from _commit(
                ctx, raw_ids, kind=kind, detail=detail, actor=actor, reason=reason, also=also
            )
        )

    return _write(ctx, plan()) if not dry_run else _read(plan())


def _commit(
    ctx: st.Context,
    raw_ids: Sequence[Any],
    *,
    kind: str,
    detail: str,
    actor: str | None,
    reason: str | None,
    also: AlsoRevoke | None,
) -> Plan[RevocationResult]:
    """Rotate ``raw_ids`` (as the id column stores them), run ``also``, write the audit and
    the event rows: the writing half of every revocation, inside its transaction."""
    now = ctx.clock()
    for chunk, statement in st.rotate_batches(ctx, raw_ids, now):
        _check_all_changed((yield Count(statement)), chunk)
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


def _check_all_changed(rows: Rows, chunk: Sequence[Any]) -> None:
    """Every selected row must have been written, or the transaction rolls back: a user
    left out of a revocation (an id that did not round-trip) must never pass silently."""
    if int(rows[0]["n"]) != len(chunk):
        raise BackendError("a bulk write did not reach every selected user")


def _at_most(rows: Rows, chunk: Sequence[Any]) -> int:
    """A re-wrap's compare-and-swap writes at most the rows it read (fewer: rotated since,
    left for the next run); more would be a statement matching rows it should not."""
    written = int(rows[0]["n"])
    if written > len(chunk):
        raise BackendError("a bulk write reached rows it did not select")
    return written


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """One committed batch of a batched cohort revocation, and where the next starts."""

    result: RevocationResult
    last: Any  # the largest id of this batch, as the id column stores it (None: done)
    fetched: int = 0  # rows the SELECT returned (a join may repeat an id)


# Statements a caller adds to each batch's transaction (after ``also``, before the audit
# and event rows), given its ids and ``last``: the keyset position the next batch starts
# after, in the database's own order (not Python's max of the ids). E.g. a job's progress
# row, so that a resume (``after=last``) starts exactly where the committed batches end.
RecordBatch = Callable[[Sequence[Any], Any], Plan[None]]


def revoke_batch(
    ctx: st.Context,
    cohort: Cohort,
    *,
    after: Any,
    batch_size: int,
    detail: str,
    actor: str | None,
    reason: str | None,
    also: AlsoRevoke | None = None,
    record: RecordBatch | None = None,
) -> Job[Batch]:
    """The next ``batch_size`` users of ``cohort`` with an id above ``after`` (``None``:
    from the start), rotated, audited and logged as one event: one transaction.

    Keyset order on the id column: every user the cohort selects is visited once, however
    the batches before changed the rows. ``cohort.user_ids`` is not supported here (the
    store slices id lists itself)."""
    rv.check_cohort(cohort)
    statement = st.select_batch(ctx, cohort, after=after, limit=batch_size)

    def plan() -> Plan[Batch]:
        (row,) = yield Fetch(statement)
        raw_ids = list(dict.fromkeys(st.parse_rows(row["rows"])))  # a join may repeat one
        if not raw_ids:
            return Batch(rv.result_for((), dry_run=False, audit_id=None), None)
        last = row["last"]

        def also_and_record(ids: Sequence[Any]) -> Plan[None]:
            if also is not None:
                yield from also(ids)
            if record is not None:
                yield from record(ids, last)

        result = yield from _commit(
            ctx,
            raw_ids,
            kind="cohort",
            detail=detail,
            actor=actor,
            reason=reason,
            also=also_and_record,
        )
        return Batch(result, last, int(row["n"]))

    return _write(ctx, plan())


class Batches:
    """The jobs of a batched revocation, one per batch, for either store to drive::

        for job in jobs:
            batch = run(job)      # one committed transaction
            jobs.advance(batch)   # where the next batch starts (or: done)

    The decisions (keyset position, when to stop, the audit detail) live here. ``after``:
    start after this id (a :attr:`Batch.last` a run recorded; ``None``: from the start)."""

    def __init__(
        self,
        ctx: st.Context,
        cohort: Cohort,
        *,
        batch_size: int,
        actor: str | None,
        reason: str | None,
        also: AlsoRevoke | None,
        record: RecordBatch | None = None,
        after: Any = None,
    ) -> None:
        rv.check_cohort(cohort)
        st.select_batch(ctx, cohort, after=after, limit=batch_size)  # CohortError now
        self._ctx, self._cohort, self._size = ctx, cohort, batch_size
        self._actor, self._reason, self._also, self._record = actor, reason, also, record
        self._detail = rv.describe_cohort(cohort)
        self._after: Any = after
        self._number = 0
        self._done = False

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> Job[Batch]:
        if self._done:
            raise StopIteration
        self._number += 1
        return revoke_batch(
            self._ctx,
            self._cohort,
            after=self._after,
            batch_size=self._size,
            detail=f"{self._detail} (batch {self._number})",
            actor=self._actor,
            reason=self._reason,
            also=self._also,
            record=self._record,
        )

    def advance(self, batch: Batch) -> None:
        """Record a committed batch: the next one starts after its last id."""
        self._after = batch.last
        self._done = batch.last is None or batch.fetched < self._size


def preview_batches(ctx: st.Context, cohort: Cohort) -> Job[RevocationResult]:
    """The dry run of a batched revocation: how many users, and the first
    :data:`MAX_LISTED_IDS` of them in batch (id) order. Two index reads, no lock."""
    rv.check_cohort(cohort)
    count, first = st.preview_batches(ctx, cohort, MAX_LISTED_IDS)

    def plan() -> Plan[RevocationResult]:
        total = int((yield Fetch(count))[0]["n"])
        ids = tuple(map(str, st.parse_rows((yield Fetch(first))[0]["rows"])))
        return RevocationResult(
            count=total, user_ids=ids, dry_run=True, audit_id=None, truncated=total > len(ids)
        )

    return _read(plan())


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


def rewrap_batch(
    ctx: st.Context, batch_size: int, *, after: Any, actor: str | None
) -> Job[tuple[int, Any]]:
    """Move up to ``batch_size`` secrets with an id above ``after`` (``None``: from the
    start) to the primary KEK; one transaction, one audit row.

    Returns how many moved and the last id (keyset order, so a run visits each row once:
    no rescans of rows already moved); ``(0, None)``: nothing left. The user key is
    unchanged, so there is no version bump, no NOTIFY and no listener call. A row is
    written only if it still holds the secret read (compare-and-swap, no row lock): one
    rotated meanwhile keeps its new key, is not counted, and ``rewrap_pending`` still
    shows it if its new key is under an old KEK. A secret that does not open raises
    :class:`~sjti.errors.UnwrapError` and the whole batch rolls back (fail closed).
    Unwrapping and wrapping again run a round ahead of the database
    (:func:`~sjti.stores._statements.made_ahead`), like a revocation's.
    """
    ring = ctx.ring

    def rewrapped(rows: Sequence[Sequence[Any]]) -> list[str]:
        ids = [str(row[0]) for row in rows]
        kek_ids = [row[2] for row in rows] if ctx.target.kek_id is not None else None
        return ring.wrap_texts(ids, ring.unwrap_texts(ids, [row[1] for row in rows], kek_ids))

    def plan() -> Plan[tuple[int, Any]]:
        (found,) = yield Fetch(st.select_rewrap(ctx, batch_size, after=after))
        rows = st.parse_rows(found["rows"])  # [id, wrapped(, kek_id)] each
        if not rows:
            return 0, None
        chunks = [rows[i : i + st.ROTATE_BATCH] for i in range(0, len(rows), st.ROTATE_BATCH)]
        moved = 0
        for chunk, texts in zip(chunks, st.made_ahead(rewrapped, chunks), strict=True):
            ids, olds = [row[0] for row in chunk], [row[1] for row in chunk]
            written = yield Count(st.bulk_update(ctx, ids, texts, None, replaces=olds))
            moved += _at_most(written, ids)
        yield Fetch(
            st.insert_audit(
                ctx,
                at=ctx.clock(),
                actor=actor,
                reason=None,
                kind=REWRAP_KIND,
                count=moved,
                detail=describe_rewrap(ctx),
            )
        )
        return moved, found["last"]

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
