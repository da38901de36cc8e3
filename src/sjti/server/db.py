"""The service's tables (SQLAlchemy Core) and the migration hook that creates them.

User secrets use the **app-users-table layout** (:class:`~sjti.stores.sql.AppUsersTable`):
the wrapped key lives in three columns of ``sjti_users``, so the store, its cohort
revocations and the audit trail all work on the service's own users table.

:func:`migrate` is versioned like :func:`sjti.stores.sql.upgrade`: one transaction behind
a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so several
workers starting at once create each table exactly once. Append migrations, never edit one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.schema import CreateColumn

from .._engine import make_engine
from ..stores._schema import UtcDateTime
from ..stores.sql import AppUsersTable, CohortColumns, secret_columns, upgrade

__all__ = [
    "COHORT_COLUMNS",
    "LAYOUT",
    "families",
    "make_engine",
    "metadata",
    "migrate",
    "refresh_tokens",
    "revocation_jobs",
    "users",
]

metadata = MetaData()

users = Table(
    "sjti_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("role", String(32), nullable=False, server_default="user"),
    Column("tenant", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime, nullable=True),
    *secret_columns(),  # token_secret (wrapped), token_version, token_rotated_at
    Column("disabled_at", UtcDateTime, nullable=True),  # v2: set by `sjti users disable`
)

families = Table(
    "sjti_refresh_families",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("sjti_users.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=False),
    Column("user_agent", String(256), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("revoked", Boolean, nullable=False, server_default="0"),
    Column("revoked_at", UtcDateTime, nullable=True),
)

refresh_tokens = Table(
    "sjti_refresh_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # b64url of the token's 16-byte id
    Column("family_id", String(32), ForeignKey("sjti_refresh_families.id"), index=True),
    Column("verifier_hash", String(64), nullable=False),  # hex SHA-256 of the secret part
    Column("used", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# v3: cohort revocation jobs, shared by every worker and node (sjti.server.jobs). The
# counters are written in each batch's own transaction; owner + heartbeat_at are the lease.
revocation_jobs = Table(
    "sjti_revocation_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),  # running, done, failed
    Column("cohort", Text, nullable=False),  # the criteria as JSON, for a resume
    Column("description", String(512), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("batch_size", Integer, nullable=False),
    Column("pause_ms", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False, index=True),
    Column("owner", String(64), nullable=False),  # the worker running it (host:pid:nonce)
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("batches", Integer, nullable=False),
    Column("revoked", BigInteger, nullable=False),
    Column("refresh_sessions_revoked", BigInteger, nullable=False),
    Column("first_event_id", BigInteger, nullable=True),
    Column("last_event_id", BigInteger, nullable=True),
    Column("last_audit_id", BigInteger, nullable=True),
    Column("error", String(64), nullable=True),
    Column("resumed", Integer, nullable=False),
    # v4: the keyset position after the last committed batch, typed as JSON (an id may be
    # an int or a text), written in that batch's transaction: where a resume starts.
    Column("resume_after", Text, nullable=True),
)

_versions = Table(
    "sjti_server_schema",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

LAYOUT: Final = AppUsersTable(users)
COHORT_COLUMNS: Final = CohortColumns(
    users, tenant="tenant", role="role", created_at="created_at", last_login_at="last_login_at"
)
_LOCK_KEY: Final = 0x736A74695F737276  # "sjti_srv": not the stores' key


def _v1(conn: Connection) -> None:
    """Create the users, refresh-family and refresh-token tables (as v1 shaped them)."""
    v1_users = Table(
        "sjti_users",
        MetaData(),
        *(c._copy() for c in users.columns if c.name not in ("disabled_at", "token_devices")),
    )
    v1_users.create(conn)
    for table in (families, refresh_tokens):
        table.create(conn)


def _v2(conn: Connection) -> None:
    """Users can be disabled (``sjti users disable``): ``disabled_at``."""
    spec = CreateColumn(users.c.disabled_at._copy()).compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE sjti_users ADD COLUMN {spec}"))


def _v3(conn: Connection) -> None:
    """Cohort revocation jobs live in the database, visible from every worker."""
    v3_jobs = Table(
        "sjti_revocation_jobs",
        MetaData(),
        *(c._copy() for c in revocation_jobs.columns if c.name != "resume_after"),
    )
    v3_jobs.create(conn)


def _v4(conn: Connection) -> None:
    """A job resumes after its last committed batch's keyset position: ``resume_after``."""
    spec = CreateColumn(revocation_jobs.c.resume_after._copy()).compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE sjti_revocation_jobs ADD COLUMN {spec}"))


MIGRATIONS: Final[Sequence[Callable[[Connection], None]]] = (_v1, _v2, _v3, _v4)


def migrate(engine: Engine) -> None:
    """Create or upgrade the service's tables, then the store's (audit) table. Idempotent."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(select(func.pg_advisory_xact_lock(literal(_LOCK_KEY, BigInteger))))
        _versions.create(conn, checkfirst=True)
        current = conn.execute(select(_versions.c.version)).scalar_one_or_none() or 0
        for migration in MIGRATIONS[current:]:
            migration(conn)
        if current == 0:
            conn.execute(_versions.insert().values(id=1, version=len(MIGRATIONS)))
        elif current < len(MIGRATIONS):
            conn.execute(_versions.update().values(version=len(MIGRATIONS)))
        conn.commit()
    upgrade(engine, LAYOUT)
