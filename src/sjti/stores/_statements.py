"""Every SQL statement the stores run, built by pure functions from a resolved context.

Nothing here touches a connection: the sync and async stores execute what these return.
Callers never contribute SQL text; cohort criteria become bound SQLAlchemy expressions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    FromClause,
    Insert,
    MetaData,
    Select,
    Table,
    Text,
    Update,
    case,
    cast,
    column,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .._core.wrapping import KekRing, WrappedSecret
from ..errors import ConfigurationError
from . import _schema
from .base import Cohort, CohortError
from .layouts import AppUsersTable, CohortColumns, Layout, OwnedTable

__all__ = [
    "ID_CHUNK",
    "ROTATE_BATCH",
    "Context",
    "Target",
    "advisory_lock",
    "begin_write",
    "build_context",
    "bulk_update",
    "coerce_id",
    "count_rewrap",
    "insert_audit",
    "insert_secret_if_absent",
    "made_ahead",
    "notify",
    "parse_rows",
    "preview_batches",
    "rotate_batches",
    "select_audit",
    "select_batch",
    "select_rewrap",
    "select_secret",
    "select_targets",
    "set_secret_if_null",
]

# Ids per ``IN (...)``: far below SQLite's and psycopg's bound-parameter limits.
ID_CHUNK: Final = 1000
# Users per bulk UPDATE of a rotation or re-wrap (one statement, rows as one parameter).
ROTATE_BATCH: Final = 1000
_ADVISORY_LOCK_KEY: Final = 0x736A7469  # "sjti": serialises sjti migrations in one database
_DIALECTS: Final = frozenset({"sqlite", "postgresql"})
_SQLITE_MIN: Final = (3, 33, 0)  # UPDATE ... FROM (2020); json_each is built in since 3.38


@dataclass(frozen=True, slots=True)
class Target:
    """The table and columns that hold secrets, whatever the layout."""

    table: Table
    id: Column[Any]
    secret: Column[Any]
    version: Column[Any]
    rotated_at: Column[Any]
    devices: Column[Any]  # signed-in devices (see stores/_devices.py); NULL: not tracked
    kek_id: Column[Any] | None  # the owned table only
    owned: bool
    int_ids: bool  # the app's id column holds integers; sjti speaks strings

    @classmethod
    def of(cls, layout: Layout) -> Target:
        if isinstance(layout, OwnedTable):
            table = _schema.owned_table(MetaData(), layout.name)
            c = table.c
            return cls(
                table,
                c.user_id,
                c.wrapped_secret,
                c.version,
                c.rotated_at,
                c.devices,
                c.kek_id,
                owned=True,
                int_ids=False,
            )
        table, c = layout.table, layout.table.c
        id_column = c[layout.id_column]
        return cls(
            table,
            id_column,
            c[layout.secret_column],
            c[layout.version_column],
            c[layout.rotated_at_column],
            c[layout.devices_column],
            None,
            owned=False,
            int_ids=_python_type(id_column) is int,
        )


@dataclass(frozen=True, slots=True)
class Context:
    """Everything the statements and plans need, resolved once when a store is built."""

    dialect: str
    ring: KekRing
    target: Target
    audit: Table
    cohort_columns: CohortColumns | None
    notify_channel: str | None
    clock: Callable[[], datetime]
    events: Table
    nodes: Table


def build_context(
    dialect: str,
    ring: KekRing,
    layout: Layout,
    cohort_columns: CohortColumns | None,
    notify_channel: str | None,
    clock: Callable[[], datetime],
) -> Context:
    if dialect not in _DIALECTS:
        raise ConfigurationError(f"sjti SQL stores support SQLite and PostgreSQL, not {dialect}")
    if dialect == "sqlite" and sqlite3.sqlite_version_info < _SQLITE_MIN:
        # Rotations are one UPDATE ... FROM json_each(...) per round (see bulk_update).
        raise ConfigurationError(
            f"sjti needs SQLite {'.'.join(map(str, _SQLITE_MIN))} or newer "
            f"(UPDATE ... FROM), this Python has {sqlite3.sqlite_version}"
        )
    if not isinstance(ring, KekRing):
        raise ConfigurationError("the store needs a KekRing")
    if not isinstance(layout, OwnedTable | AppUsersTable):
        raise ConfigurationError("layout must be OwnedTable or AppUsersTable")
    if notify_channel is not None:
        if dialect != "postgresql":
            raise ConfigurationError("notify_channel needs PostgreSQL (LISTEN/NOTIFY)")
        if not notify_channel or len(notify_channel) > 63:
            raise ConfigurationError("notify_channel must be 1 to 63 characters")
    metadata = MetaData()
    return Context(
        dialect,
        ring,
        Target.of(layout),
        _schema.audit_table(metadata, layout.audit_table),
        cohort_columns,
        notify_channel,
        clock,
        _schema.events_table(metadata, layout.events_table),
        _schema.nodes_table(metadata, layout.nodes_table),
    )


def _python_type(column: Column[Any]) -> type | None:
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:
        return None
    return python_type


def coerce_id(target: Target, user_id: str) -> object | None:
    """The id as the id column stores it, or ``None`` if no row can have it.

    Integer ids accept only their canonical decimal text: ``"042"`` is not user 42 (its
    secret is bound to the text ``"42"``, so it could never unwrap anyway).
    """
    if not isinstance(user_id, str) or not user_id:
        return None
    if not target.int_ids:
        return user_id
    if not user_id.isascii() or not user_id.lstrip("-").isdigit():
        return None
    value = int(user_id)
    return value if str(value) == user_id else None


# -- transactions -------------------------------------------------------------------------


def begin_write(ctx: Context) -> str | None:
    """The statement that opens a write transaction, if the dialect needs one.

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, the SQLite way of
    ``SELECT ... FOR UPDATE``; a deferred transaction that reads and then writes can fail
    with "database is locked" without waiting. PostgreSQL: the driver's own BEGIN.
    """
    return "BEGIN IMMEDIATE" if ctx.dialect == "sqlite" else None


def advisory_lock() -> Select[Any]:
    """PostgreSQL: one lock for all sjti migrations, released at commit or rollback."""
    return select(func.pg_advisory_xact_lock(literal(_ADVISORY_LOCK_KEY, BigInteger)))


# -- reading and creating one secret ------------------------------------------------------


def secret_columns_of(target: Target) -> list[Column[Any]]:
    """What a key lookup reads, in this order: id, wrapped secret, devices[, kek_id]."""
    columns = [target.id, target.secret, target.devices]
    return columns + ([target.kek_id] if target.kek_id is not None else [])


def select_secret(ctx: Context, id_value: object, *, lock: bool = False) -> Select[Any]:
    """The key record's columns for one user (``lock``: for update, in a write)."""
    columns = secret_columns_of(ctx.target)
    labels = ("user_id", "wrapped", "devices", "kek_id")
    statement = select(*(c.label(n) for c, n in zip(columns, labels, strict=False)))
    statement = statement.where(ctx.target.id == id_value)
    return statement.with_for_update() if lock and ctx.dialect == "postgresql" else statement


def set_devices(ctx: Context, id_value: object, devices: str) -> Update:
    """A user's device list, as :func:`sjti.stores._devices.column_text` writes it."""
    t = ctx.target
    return update(t.table).where(t.id == id_value).values({t.devices: devices})


def insert_secret_if_absent(
    ctx: Context, id_value: object, wrapped: WrappedSecret, now: datetime
) -> Insert:
    """Owned table: the first concurrent ``ensure`` inserts, the others do nothing."""
    t = ctx.target
    values = {
        t.id: id_value,
        t.secret: wrapped.to_str(),
        t.version: 1,
        t.rotated_at: now,
    }
    if t.kek_id is not None:
        values[t.kek_id] = wrapped.kek_id
    dialect_insert = postgresql.insert if ctx.dialect == "postgresql" else sqlite.insert
    return dialect_insert(t.table).values(values).on_conflict_do_nothing(index_elements=[t.id])


def set_secret_if_null(
    ctx: Context, id_value: object, wrapped: WrappedSecret, now: datetime
) -> Update:
    """App table: fill the secret only if still NULL, so the first ``ensure`` wins."""
    t = ctx.target
    return (
        update(t.table)
        .where(t.id == id_value, t.secret.is_(None))
        .values(
            {
                t.secret: wrapped.to_str(),
                t.version: func.coalesce(t.version, 0) + 1,
                t.rotated_at: now,
            }
        )
    )


# -- revocation ---------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _join_condition(ctx: Context, columns: CohortColumns) -> ColumnElement[bool]:
    """The app's id column = the secret's id; cast to text when the types differ."""

    def as_text(column: Column[Any]) -> ColumnElement[Any]:
        return column if _python_type(column) is str else cast(column, Text)

    app_id, secret_id = columns.table.c[columns.id_column], ctx.target.id
    if _python_type(app_id) is _python_type(secret_id):
        return app_id == secret_id
    return as_text(app_id) == as_text(secret_id)


def _cohort_filters(ctx: Context, cohort: Cohort) -> tuple[FromClause, list[ColumnElement[bool]]]:
    """FROM and WHERE for every criterion but ``user_ids``; CohortError for unmapped ones."""
    t, columns = ctx.target, ctx.cohort_columns
    source: FromClause = t.table
    filters: list[ColumnElement[bool]] = [t.secret.is_not(None)]
    if cohort.rotated_before is not None:
        filters.append(t.rotated_at < cohort.rotated_before)
    app_filters: list[ColumnElement[bool]] = []
    for name in ("tenant", "role", "created_before", "last_login_before"):
        value = getattr(cohort, name)
        if value is None:
            continue
        column = columns.column_for(name) if columns is not None else None
        if column is None:
            raise CohortError(f"cohort field {name!r} has no configured column")
        app_filters.append(column < value if name.endswith("_before") else column == value)
    for key, value in sorted(cohort.equals.items()):
        column = columns.extra_column(key) if columns is not None else None
        if column is None:
            raise CohortError(f"cohort key {key!r} has no configured column")
        app_filters.append(column == value)
    if app_filters and columns is not None and columns.table is not t.table:
        source = t.table.join(columns.table, _join_condition(ctx, columns))
    return source, filters + app_filters


def select_targets(ctx: Context, cohort: Cohort, *, lock: bool) -> list[Select[Any]]:
    """The SELECTs (one per chunk of ids) that find the users a cohort revokes.

    ``lock``: ``FOR UPDATE`` of the secret rows on PostgreSQL (SQLite ignores it; its
    write transaction already holds the database lock). Rows are locked in id order, so
    overlapping revocations mostly queue instead of deadlocking; PostgreSQL aborts any
    deadlock left (a BackendError), and retrying a revocation is harmless.
    """
    t = ctx.target
    source, filters = _cohort_filters(ctx, cohort)
    base = select(t.id.label("user_id")).select_from(source).order_by(t.id)
    if lock:
        base = base.with_for_update(of=t.table)
    if cohort.user_ids is None:
        return [base.where(*filters)]
    # Any fixed order will do for chunking; within a chunk ORDER BY sets the lock order.
    values = {v for v in (coerce_id(t, uid) for uid in cohort.user_ids) if v is not None}
    ids = sorted(values, key=str)
    return [base.where(t.id.in_(chunk), *filters) for chunk in _chunks(ids, ID_CHUNK)]


def bulk_update(
    ctx: Context,
    raw_ids: Sequence[Any],
    secrets: Sequence[str],
    now: datetime | None,
    replaces: Sequence[str] | None = None,
) -> Update:
    """One UPDATE giving each of ``raw_ids`` its new wrapped secret (under the primary
    KEK); with ``now`` it is a rotation (version + 1, rotated_at = now), without it a
    re-wrap (the user key, version and rotated_at stay). ``replaces``: the secret each
    row must still hold (compare-and-swap, a re-wrap's guard: a row rotated since it was
    read keeps its new key and is not counted).

    The rows travel as one JSON text parameter (orjson makes it in C), joined in the
    database: PostgreSQL ``FROM json_to_recordset(...) AS v(i, s, o)``, SQLite
    ``FROM json_each(...)`` over ``[[id, secret(, old)], ...]``; measured faster than
    psycopg's Python array dumper.
    One statement per round, not one per user: no per-row parameter processing in Python,
    and the driver waits for the whole round outside the GIL (see :func:`made_ahead`).
    """
    t = ctx.target
    row_id: ColumnElement[Any]
    row_secret: ColumnElement[Any]
    row_old: ColumnElement[Any]
    rows: list[Any] = [[raw, text] for raw, text in zip(raw_ids, secrets, strict=True)]
    if replaces is not None:
        for row, old in zip(rows, replaces, strict=True):
            row.append(old)
    if ctx.dialect == "postgresql":
        # json_to_recordset parses each object straight into typed columns: measured
        # ~10% less server time per row than json_array_elements with ->> and a cast.
        # Rows of a rotation have no "o": json_to_recordset reads it as NULL (unused).
        objects = [dict(zip(("i", "s", "o"), row, strict=False)) for row in rows]
        payload = cast(literal(orjson.dumps(objects).decode(), Text()), JSON)
        records = func.json_to_recordset(payload)
        typed = records.table_valued(
            column("i", t.id.type), column("s", Text()), column("o", Text())
        )
        element = typed.render_derived(name="v", with_types=True)
        row_id, row_secret, row_old = element.c.i, element.c.s, element.c.o
    else:
        pairs = literal(orjson.dumps(rows).decode(), Text())
        element = func.json_each(pairs).table_valued("value")
        row_id = func.json_extract(element.c.value, "$[0]")
        row_secret = func.json_extract(element.c.value, "$[1]")
        row_old = func.json_extract(element.c.value, "$[2]")
    values: dict[Column[Any], Any] = {t.secret: row_secret}
    if now is not None:
        values[t.version] = func.coalesce(t.version, 0) + 1
        values[t.rotated_at] = literal(now, t.rotated_at.type)
        # A new key signs every device out (tracked lists empty, untracked stay NULL).
        values[t.devices] = case((t.devices.is_(None), null()), else_=literal("", Text()))
    if t.kek_id is not None:
        values[t.kek_id] = literal(ctx.ring.primary.kid, t.kek_id.type)
    where = [t.id == row_id] + ([t.secret == row_old] if replaces is not None else [])
    return update(t.table).where(*where).values(values)


Bulk = tuple[Sequence[Any], Update]


def rotate_batches(ctx: Context, raw_ids: Sequence[Any], now: datetime) -> Iterator[Bulk]:
    """The rotation of ``raw_ids``, :data:`ROTATE_BATCH` users per statement
    (:func:`bulk_update`), each with a fresh random key: ``(ids, statement)`` pairs, made
    as they are sent (memory bounded by two rounds)."""
    ring = ctx.ring

    def wrap(chunk: Sequence[Any]) -> list[str]:
        return ring.wrap_texts([str(raw) for raw in chunk])

    chunks = list(_chunks(raw_ids, ROTATE_BATCH))
    for chunk, secrets in zip(chunks, made_ahead(wrap, chunks), strict=True):
        yield chunk, bulk_update(ctx, chunk, secrets, now)


T = TypeVar("T")
U = TypeVar("U")


def made_ahead(make: Callable[[T], U], items: Sequence[T]) -> Iterator[U]:
    """``make(item)`` for each item, the next one made on a helper thread while the
    caller uses this one.

    The caller sends each round to the database, and the drivers wait for a statement
    outside the GIL: the encryption of round n+1 (about as costly per user as the
    database's UPDATE) overlaps with round n instead of adding to it.
    """
    if len(items) < 2:
        yield from map(make, items)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sjti-wrap") as pool:
        pending = pool.submit(make, items[0])
        for following in items[1:]:
            ready = pending.result()
            pending = pool.submit(make, following)
            yield ready
        yield pending.result()


def _aggregated(ctx: Context, rows: Select[Any], *items: ColumnElement[Any]) -> Select[Any]:
    """One row for a whole batch: ``n`` (rows ``rows`` returned), ``last`` (its largest id,
    in the database's own order: the next batch's keyset start) and ``rows``, a JSON text
    array of ``items`` per row (one item: its value; several: an array).

    A batch comes back as one text that orjson parses in C, instead of ``limit`` row
    objects built in Python (measured: most of the Python time of a batch). ``rows`` keeps
    its ``FOR UPDATE``: PostgreSQL locks the subquery's rows, in its ``ORDER BY``."""
    sub = rows.subquery("batch")
    columns = [sub.c[item.key] for item in items if item.key is not None]
    element: ColumnElement[Any]
    if ctx.dialect == "postgresql":
        element = columns[0] if len(columns) == 1 else func.json_build_array(*columns)
        array: ColumnElement[Any] = cast(func.json_agg(element), Text)
    else:
        element = columns[0] if len(columns) == 1 else func.json_array(*columns)
        array = func.json_group_array(element)
    return select(
        func.count().label("n"),
        func.max(sub.c.user_id).label("last"),
        array.label("rows"),
    )


def parse_rows(text: str | None) -> list[Any]:
    """The ``rows`` of :func:`_aggregated` (PostgreSQL's ``json_agg`` of nothing is NULL)."""
    return [] if text is None else list(orjson.loads(text))


def select_batch(ctx: Context, cohort: Cohort, *, after: Any, limit: int) -> Select[Any]:
    """The next ``limit`` users of a criteria cohort above id ``after``, locked, in id
    order (keyset pagination: each user once, whatever earlier batches changed), as one
    aggregated row (:func:`_aggregated`: ``n``, ``last``, ``rows`` = the ids)."""
    if cohort.user_ids is not None:
        raise CohortError("a batched revocation selects by criteria, not by id list")
    t = ctx.target
    source, filters = _cohort_filters(ctx, cohort)
    if after is not None:
        filters.append(t.id > after)
    user_id = t.id.label("user_id")
    rows = (
        select(user_id)
        .select_from(source)
        .where(*filters)
        .order_by(t.id)
        .limit(limit)
        .with_for_update(of=t.table)
    )
    return _aggregated(ctx, rows, user_id)


def preview_batches(ctx: Context, cohort: Cohort, listed: int) -> tuple[Select[Any], Select[Any]]:
    """A batched revocation's dry run: its size (``n``), and its first ``listed`` ids in id
    order (aggregated like a batch: ``rows``)."""
    if cohort.user_ids is not None:
        raise CohortError("a batched revocation selects by criteria, not by id list")
    t = ctx.target
    source, filters = _cohort_filters(ctx, cohort)
    # A joined table may repeat an id (the revocation dedupes); count each user once.
    counted = func.count(t.id.distinct()) if source is not t.table else func.count()
    count = select(counted.label("n")).select_from(source).where(*filters)
    user_id = t.id.label("user_id")
    first = select(user_id).select_from(source).where(*filters).order_by(t.id).limit(listed)
    return count, _aggregated(ctx, first, user_id)


# -- KEK rotation (rewrap) ----------------------------------------------------------------


def _under_other_kek(ctx: Context, kek_id: str | None) -> ColumnElement[bool]:
    """Rows whose secret is not under the primary KEK (or, with ``kek_id``, under that one).

    The owned table filters on its indexed ``kek_id`` column. The app layout has none: it
    matches the text form's ``v1.<kek_id>.`` prefix (``autoescape``: ``_`` is a LIKE
    wildcard and may appear in a KEK id). A malformed text matches "not the primary", so
    it is picked up and fails to unwrap rather than being skipped.
    """
    t = ctx.target
    primary = ctx.ring.primary.kid
    if t.kek_id is not None:
        return t.kek_id != primary if kek_id is None else t.kek_id == kek_id
    if kek_id is None:
        prefix = _text_prefix(primary)
        return t.secret.is_not(None) & ~t.secret.startswith(prefix, autoescape=True)
    return t.secret.startswith(_text_prefix(kek_id), autoescape=True)


def _text_prefix(kek_id: str) -> str:
    """``v1.<kek_id>.``: how every text form under that KEK starts (an empty blob's form)."""
    return WrappedSecret(kek_id=kek_id, blob=b"").to_str()


def select_rewrap(ctx: Context, limit: int, *, after: Any = None) -> Select[Any]:
    """The next ``limit`` rows (ids above ``after``) to move to the primary KEK, in id
    order, as one aggregated row (:func:`_aggregated`: ``rows`` =
    ``[id, wrapped(, kek_id)]`` each).

    No row lock: the re-wrap writes each row only if it still holds the secret read here
    (:func:`bulk_update` with ``replaces``), so a row a revocation rotated meanwhile keeps
    its new key and is left for the next run, as ``SKIP LOCKED`` left it before, without
    a locking write (and its WAL record) per row on PostgreSQL: measured ~20% of the
    re-wrap's server time. SQLite's ``BEGIN IMMEDIATE`` already holds the database.
    """
    t = ctx.target
    columns = [t.id.label("user_id"), t.secret.label("wrapped")]
    if t.kek_id is not None:
        columns.append(t.kek_id.label("kek_id"))
    filters = [_under_other_kek(ctx, None)]
    if after is not None:
        filters.append(t.id > after)
    rows = select(*columns).where(*filters).order_by(t.id).limit(limit)
    return _aggregated(ctx, rows, *columns)


def count_rewrap(ctx: Context, kek_id: str | None = None) -> Select[Any]:
    """How many secrets are not under the primary KEK (with ``kek_id``: under that KEK)."""
    t = ctx.target
    return select(func.count().label("n")).select_from(t.table).where(_under_other_kek(ctx, kek_id))


def notify(ctx: Context, message: str) -> Select[Any]:
    """``pg_notify`` inside the revocation transaction: delivered only if it commits."""
    return select(func.pg_notify(ctx.notify_channel, message))


def insert_audit(
    ctx: Context,
    *,
    at: datetime,
    actor: str | None,
    reason: str | None,
    kind: str,
    count: int,
    detail: str | None,
) -> Insert:
    a = ctx.audit
    return (
        insert(a)
        .values(at=at, actor=actor, reason=reason, kind=kind, count=count, detail=detail)
        .returning(a.c.id)
    )


def select_audit(ctx: Context, limit: int) -> Select[Any]:
    return select(ctx.audit).order_by(ctx.audit.c.id.desc()).limit(limit)
