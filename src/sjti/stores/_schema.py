"""Table definitions sjti owns, and the column types it needs. Pure: builds objects only.

The migrations in :mod:`sjti.stores.migrations` create these tables; the statements in
:mod:`sjti.stores._statements` query them. When a table's shape changes, the migration
that created the old shape must keep its own frozen copy of the old definition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from ..errors import ConfigurationError

__all__ = [
    "VERSION_TABLE",
    "UtcDateTime",
    "audit_table",
    "events_table",
    "nodes_table",
    "owned_table",
    "secret_columns",
    "version_table",
]

VERSION_TABLE: Final = "sjti_schema_version"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC text, which also keeps ``<`` comparisons (``rotated_before``) correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ConfigurationError("sjti stores need timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id_type() -> BigInteger:
    # SQLite makes only INTEGER PRIMARY KEY an auto-incrementing rowid alias.
    return BigInteger().with_variant(Integer(), "sqlite")


def owned_table(metadata: MetaData, name: str) -> Table:
    """The table sjti owns: one row per user that has a secret."""
    return Table(
        name,
        metadata,
        Column("user_id", Text, primary_key=True),
        Column("wrapped_secret", Text, nullable=False),  # WrappedSecret.to_str()
        # Also inside wrapped_secret; a column of its own lets KEK rotation find the rows
        # still under an old KEK with an index instead of parsing every row.
        Column("kek_id", String(64), nullable=False, index=True),
        Column("version", Integer, nullable=False),
        Column("rotated_at", UtcDateTime, nullable=False),
        # v2: the user's signed-in devices (see _core.binding); NULL: not tracked.
        Column("devices", Text, nullable=True),
        Index(f"ix_{name}_rotated_at", "rotated_at"),
    )


def audit_table(metadata: MetaData, name: str) -> Table:
    """One row per revocation (never per user): when, by whom, why, how many."""
    return Table(
        name,
        metadata,
        Column("id", _id_type(), primary_key=True, autoincrement=True),
        Column("at", UtcDateTime, nullable=False),
        Column("actor", Text),
        Column("reason", Text),
        Column("kind", String(32), nullable=False),
        Column("count", Integer, nullable=False),
        Column("detail", Text),
    )


def version_table(metadata: MetaData) -> Table:
    """Schema version per sjti table ("scope"), so several layouts share one database."""
    return Table(
        VERSION_TABLE,
        metadata,
        Column("scope", String(200), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("applied_at", UtcDateTime, nullable=False),
    )


def secret_columns(
    secret: str = "token_secret",  # noqa: S107 - a column name, not a password
    version: str = "token_version",
    rotated_at: str = "token_rotated_at",
    devices: str = "token_devices",
) -> tuple[Column[Any], ...]:
    """Fresh Column objects for the app-table layout, to declare in the app's users Table:
    ``Table("users", metadata, Column("id", Integer, primary_key=True), *secret_columns())``.
    """
    return (
        Column(secret, Text, nullable=True),  # NULL until the user's first token
        Column(version, Integer, nullable=False, server_default="0"),
        Column(rotated_at, UtcDateTime, nullable=True),
        Column(devices, Text, nullable=True),  # signed-in devices; NULL: not tracked
    )


def events_table(metadata: MetaData, name: str) -> Table:
    """The revocation event log (a transactional outbox): one row per revocation.

    ``id`` is assigned in the revocation's transaction under a lock, so ids are gapless
    and commit in order: a node that has applied event N has seen every event <= N.
    ``users`` is the JSON list of affected ids, or NULL for "every user" (a cohort too
    large to list). ``published``: relayed to the bus (or sent by NOTIFY in the same
    transaction). No secrets.
    """
    return Table(
        name,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("at", UtcDateTime, nullable=False),
        Column("kind", String(32), nullable=False),
        Column("count", Integer, nullable=False),
        Column("audit_id", BigInteger),
        Column("users", Text),
        Column("published", Boolean, nullable=False),
        Index(f"ix_{name}_unpublished", "published"),
    )


def nodes_table(metadata: MetaData, name: str) -> Table:
    """Live nodes and how far each has applied the event log (acknowledged revocation)."""
    return Table(
        name,
        metadata,
        Column("id", String(64), primary_key=True),
        Column("watermark", BigInteger, nullable=False),
        Column("seen_at", UtcDateTime, nullable=False),
        Column("started_at", UtcDateTime, nullable=False),
        Column("info", String(128)),
    )
