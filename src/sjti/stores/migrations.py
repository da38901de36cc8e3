"""Schema creation and upgrades for the SQL stores: ``upgrade(engine, layout)``.

A tiny versioned runner rather than Alembic, because:

* sjti owns two small tables; Alembic's script directory, ``env.py`` and
  ``alembic_version`` table belong to the *application's* migrations, and two Alembic
  histories in one database clash. Apps that use Alembic call :func:`upgrade` from one of
  their own revisions (or at start-up);
* the runner must be safe when several processes start at once, which Alembic leaves to
  the caller;
* no extra dependency for the embedded SQLite default.

Design: ``sjti_schema_version(scope, version, applied_at)`` holds one row per sjti table
(scope ``"secrets:<name>"`` or ``"audit:<name>"``), so several layouts can share a
database. Each scope has an ordered list of migration functions; a table's version is how
many have run. :func:`upgrade` runs every pending one in ONE transaction that first takes
a lock: ``pg_advisory_xact_lock`` on PostgreSQL (DDL is transactional there), ``BEGIN
IMMEDIATE`` on SQLite (one writer at a time). A racing process waits for the lock, then
finds nothing left to do; a crash leaves the previous version intact. Never edit a
released migration: append a new one.

The app-table layout adds three columns to the application's users table. That table's
history belongs to the app, so :func:`add_secret_columns` is not versioned: it inspects
the live table and adds what is missing, under the same lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateColumn

from . import _revocation as rv
from . import _schema
from . import _statements as st
from .layouts import AppUsersTable, Layout, OwnedTable

__all__ = [
    "AUDIT_MIGRATIONS",
    "EVENTS_MIGRATIONS",
    "NODES_MIGRATIONS",
    "SECRETS_MIGRATIONS",
    "add_secret_columns",
    "add_secret_columns_async",
    "schema_versions",
    "upgrade",
    "upgrade_async",
]

Migration = Callable[[Connection, str], None]  # (connection, table name)


def _create_secrets_v1(conn: Connection, name: str) -> None:
    """Create the owned secrets table with its rotated_at and kek_id indexes (v1's shape,
    frozen here: v2 adds ``devices``)."""
    Table(
        name,
        MetaData(),
        Column("user_id", Text, primary_key=True),
        Column("wrapped_secret", Text, nullable=False),
        Column("kek_id", String(64), nullable=False, index=True),
        Column("version", Integer, nullable=False),
        Column("rotated_at", _schema.UtcDateTime, nullable=False),
        Index(f"ix_{name}_rotated_at", "rotated_at"),
    ).create(conn)


def _add_devices_v2(conn: Connection, name: str) -> None:
    """The owned table lists each user's signed-in devices (per-device revocation)."""
    column = _schema.owned_table(MetaData(), name).c.devices
    _add_column(conn, name, column)


def _add_column(conn: Connection, table_name: str, column: Column[Any]) -> None:
    # DDL from our own Column objects, compiled and quoted by the dialect: no input from a
    # caller reaches this text (table names are validated by the layouts).
    quoted = conn.dialect.identifier_preparer.quote(table_name)
    spec = CreateColumn(column._copy()).compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {quoted} ADD COLUMN {spec}"))


def _create_audit_v1(conn: Connection, name: str) -> None:
    """Create the revocation audit table."""
    _schema.audit_table(MetaData(), name).create(conn)


def _create_events_v1(conn: Connection, name: str) -> None:
    """Create the revocation event log (the outbox the buses relay)."""
    _schema.events_table(MetaData(), name).create(conn)


def _create_nodes_v1(conn: Connection, name: str) -> None:
    """Create the registry of live nodes and their watermarks."""
    _schema.nodes_table(MetaData(), name).create(conn)


# Ordered: version N = the first N functions have run. Append only.
SECRETS_MIGRATIONS: Final[Sequence[Migration]] = (_create_secrets_v1, _add_devices_v2)
AUDIT_MIGRATIONS: Final[Sequence[Migration]] = (_create_audit_v1,)
EVENTS_MIGRATIONS: Final[Sequence[Migration]] = (_create_events_v1,)
NODES_MIGRATIONS: Final[Sequence[Migration]] = (_create_nodes_v1,)


def _scopes(layout: Layout) -> list[tuple[str, str, Sequence[Migration]]]:
    scopes = [
        (f"audit:{layout.audit_table}", layout.audit_table, AUDIT_MIGRATIONS),
        (f"events:{layout.events_table}", layout.events_table, EVENTS_MIGRATIONS),
        (f"nodes:{layout.nodes_table}", layout.nodes_table, NODES_MIGRATIONS),
    ]
    if isinstance(layout, OwnedTable):
        scopes.append((f"secrets:{layout.name}", layout.name, SECRETS_MIGRATIONS))
    return scopes


def _lock(conn: Connection) -> None:
    """Serialise sjti schema changes; must be the transaction's first statement."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(st.advisory_lock())


def _versions(conn: Connection) -> dict[str, int]:
    table = _schema.version_table(MetaData())
    table.create(conn, checkfirst=True)  # safe: we hold the lock
    return {row.scope: row.version for row in conn.execute(select(table.c.scope, table.c.version))}


def _upgrade_in(conn: Connection, layout: Layout) -> list[str]:
    """Apply pending migrations inside the caller's connection; the caller commits."""
    _lock(conn)
    versions = _versions(conn)
    table = _schema.version_table(MetaData())
    applied: list[str] = []
    for scope, name, migrations in _scopes(layout):
        current = versions.get(scope, 0)
        for version, migration in enumerate(migrations[current:], start=current + 1):
            migration(conn, name)
            applied.append(f"{scope} v{version}")
        if len(migrations) > current:
            values = {"version": len(migrations), "applied_at": rv.utc_now()}
            if scope in versions:
                conn.execute(table.update().where(table.c.scope == scope).values(values))
            else:
                conn.execute(table.insert().values(scope=scope, **values))
    if isinstance(layout, AppUsersTable):
        applied.extend(_add_columns_in(conn, layout))
    return applied


def _add_columns_in(conn: Connection, layout: AppUsersTable) -> list[str]:
    table = layout.table
    present = {c["name"] for c in inspect(conn).get_columns(table.name, schema=table.schema)}
    wanted = _schema.secret_columns(
        layout.secret_column,
        layout.version_column,
        layout.rotated_at_column,
        layout.devices_column,
    )
    quoted_table = conn.dialect.identifier_preparer.format_table(table)
    added: list[str] = []
    for column in wanted:
        if column.name in present:
            continue
        # DDL from our own Column objects, compiled and quoted by the dialect: no input
        # from a caller reaches this text.
        spec = CreateColumn(column).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {quoted_table} ADD COLUMN {spec}"))
        added.append(f"{table.name}.{column.name}")
    return added


def _add_columns_locked(conn: Connection, layout: AppUsersTable) -> list[str]:
    _lock(conn)
    return _add_columns_in(conn, layout)


def upgrade(engine: Engine, layout: Layout | None = None) -> list[str]:
    """Create or upgrade the tables of ``layout`` (default :class:`OwnedTable`).

    For :class:`AppUsersTable` this also adds the secret columns the users table lacks.
    Idempotent and safe to run from several processes at once. Returns what it applied.
    """
    with engine.connect() as conn:
        applied = _upgrade_in(conn, layout or OwnedTable())
        conn.commit()
    return applied


async def upgrade_async(engine: AsyncEngine, layout: Layout | None = None) -> list[str]:
    """:func:`upgrade` for an async engine (same code, run through ``run_sync``)."""
    async with engine.connect() as conn:
        applied = await conn.run_sync(_upgrade_in, layout or OwnedTable())
        await conn.commit()
    return applied


def add_secret_columns(engine: Engine, layout: AppUsersTable) -> list[str]:
    """Add the secret, version and rotated_at columns the app's users table lacks."""
    with engine.connect() as conn:
        added = _add_columns_locked(conn, layout)
        conn.commit()
    return added


async def add_secret_columns_async(engine: AsyncEngine, layout: AppUsersTable) -> list[str]:
    async with engine.connect() as conn:
        added = await conn.run_sync(_add_columns_locked, layout)
        await conn.commit()
    return added


def schema_versions(engine: Engine) -> dict[str, int]:
    """The version of every sjti table in this database (empty before the first upgrade)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(_schema.VERSION_TABLE):
            return {}
        table = _schema.version_table(MetaData())
        return {row.scope: row.version for row in conn.execute(select(table))}
