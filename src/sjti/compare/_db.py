"""Scratch databases for the comparison: engines, the contenders' own tables, measuring.

Every table here is created idempotently (``checkfirst``). ``app_users`` stands for the
application's own users table: it exists for every contender and is never counted as
revocation state. The rest belong to one strategy each. The SQL is dialect-neutral
(SQLite and PostgreSQL); what differs (sizes, read-only copies, a dead engine) dispatches
on ``engine.dialect.name``.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from ..errors import BackendError

__all__ = [
    "APP_USERS",
    "DENYLIST",
    "EPOCHS",
    "LIVE_JTIS",
    "SESSIONS",
    "SJTI_KEYS",
    "Dump",
    "RoundTripCounter",
    "add_app_users",
    "backend_of",
    "chunks",
    "create_tables",
    "dead_engine",
    "guarded",
    "insert_ignore",
    "read_copy",
    "sqlite_engine",
    "state_bytes",
]

# A read-only copy of a store as the attacker holds it: table (or "redis") -> rows.
Dump: TypeAlias = dict[str, list[dict[str, Any]]]
_COPIES = itertools.count()

T = TypeVar("T")
CHUNK: Final = 500  # ids per IN (...) list: far below every driver's parameter limit

METADATA: Final = MetaData()
APP_USERS: Final = Table("app_users", METADATA, Column("id", Text, primary_key=True))
EPOCHS: Final = Table(
    "cmp_epoch",
    METADATA,
    Column("user_id", Text, primary_key=True),
    Column("epoch_ms", BigInteger, nullable=False),
)
DENYLIST: Final = Table(
    "cmp_denylist",
    METADATA,
    Column("jti", Text, primary_key=True),
    Column("expires_s", BigInteger, nullable=False),
    Index("ix_cmp_denylist_expires", "expires_s"),
)
# What "revoke this user" needs under a deny-list: every live jti of the user.
LIVE_JTIS: Final = Table(
    "cmp_live_jti",
    METADATA,
    Column("jti", Text, primary_key=True),
    Column("user_id", Text, nullable=False, index=True),
    Column("expires_s", BigInteger, nullable=False),
    Column("device", Text, nullable=True),  # the sid, to sign one device out
)
SESSIONS: Final = Table(
    "cmp_session",
    METADATA,
    Column("id", LargeBinary, primary_key=True),
    Column("user_id", Text, nullable=False, index=True),
    Column("verifier", LargeBinary, nullable=False),  # SHA-256(secret); raw in the weak store
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# sjti when the app tracks devices: the user's wrapped key and, on the same row, the rest
# of the key record (``0x01``, then 16 bytes per signed-in device; NULL: not tracked).
SJTI_KEYS: Final = Table(
    "cmp_sjti_key",
    METADATA,
    Column("user_id", Text, primary_key=True),
    Column("wrapped_secret", Text, nullable=False),
    Column("devices", LargeBinary, nullable=True),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # Scratch data: skip fsync so 10k users load in seconds. Sizes are unaffected.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def sqlite_engine(path: Path) -> Engine:
    """An engine on a SQLite file (created on first connect)."""
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def twin_engine(engine: Engine) -> Engine:
    """A second engine (own pool, own connections) on the same database: another node."""
    if engine.dialect.name == "sqlite":
        if engine.url.database is None:
            raise ValueError("an in-memory SQLite database cannot be shared by two engines")
        return sqlite_engine(Path(engine.url.database))
    return create_engine(engine.url.render_as_string(hide_password=False))


def backend_of(engine: Engine) -> str:
    """The backend label shown in the table: ``sqlite`` or ``pg``."""
    return "pg" if engine.dialect.name == "postgresql" else engine.dialect.name


def dead_engine(engine: Engine, scratch: Path) -> Engine:
    """An engine like ``engine`` whose every connection fails: on SQLite a file in a
    missing directory, on PostgreSQL a database that does not exist on the same server."""
    if engine.dialect.name == "postgresql":
        gone = make_url(engine.url).set(database=f"sjti_compare_gone_{secrets.token_hex(4)}")
        return create_engine(gone.render_as_string(hide_password=False))
    return create_engine(f"sqlite:///{scratch / 'no-such-dir' / 'gone.db'}")


def insert_ignore(engine: Engine, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported dialect {engine.dialect.name}")


def create_tables(engine: Engine, *tables: Table) -> None:
    """``app_users`` and ``tables``, each only if missing."""
    METADATA.create_all(engine, tables=[APP_USERS, *tables], checkfirst=True)


def add_app_users(engine: Engine, user_ids: Sequence[str]) -> None:
    """Insert rows into the application's users table, in one transaction."""
    with engine.begin() as conn:
        conn.execute(insert(APP_USERS), [{"id": user_id} for user_id in user_ids])


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def guarded() -> Iterator[None]:
    """Turn driver errors into :class:`BackendError`: a port that cannot read refuses."""
    try:
        yield
    except DBAPIError as exc:
        raise BackendError("state store unavailable") from exc.orig


def state_bytes(engine: Engine) -> tuple[int, int]:
    """Bytes and rows of every table and index but ``app_users``: SQLite's ``dbstat``
    pages, or PostgreSQL's ``pg_total_relation_size`` (heap, indexes and TOAST)."""
    if engine.dialect.name == "postgresql":
        return _pg_state_bytes(engine)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT name, tbl_name FROM sqlite_schema")).all()
        owners = {str(row[0]): str(row[1]) for row in schema}
        sizes = conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
        total = sum(
            int(size)
            for name, size in sizes
            if name != "sqlite_schema" and owners.get(name) != APP_USERS.name
        )
        rows = sum(_count(conn, name) for name, owner in owners.items() if _is_table(name, owner))
    return total, rows


def _pg_state_bytes(engine: Engine) -> tuple[int, int]:
    query = text(
        "SELECT tablename, pg_total_relation_size(format('%I.%I', schemaname, tablename)) "
        "FROM pg_tables WHERE schemaname = current_schema()"
    )
    with engine.connect() as conn:
        sizes = {str(name): int(size) for name, size in conn.execute(query)}
        sizes.pop(APP_USERS.name, None)
        rows = sum(_count(conn, name) for name in sizes)
    return sum(sizes.values()), rows


def read_copy(engine: Engine, scratch: Path) -> Dump:
    """Everything in the database, as a read-only copy hands it to an attacker.

    SQLite: the file is copied and the copy opened read-only. PostgreSQL: every table read
    with ``SELECT *`` (what ``pg_dump`` or a read replica gives). Either way the attacker
    gets rows in Python, never a connection to the live store.
    """
    if engine.dialect.name == "sqlite":
        live = engine.url.database
        if live is None:
            raise ValueError("an in-memory SQLite database has no file to copy")
        copy = scratch / f"copy-{next(_COPIES)}-{Path(live).name}"
        shutil.copyfile(live, copy)
        source = create_engine(f"sqlite:///file:{copy}?mode=ro&uri=true")
    else:
        source = engine
    try:
        return _dump(source)
    finally:
        if source is not engine:
            source.dispose()


def _dump(engine: Engine) -> Dump:
    found = MetaData()
    found.reflect(engine)
    with engine.connect() as conn:
        return {
            name: [dict(row._mapping) for row in conn.execute(select(table))]
            for name, table in found.tables.items()
        }


def _is_table(name: str, owner: str) -> bool:
    return name == owner and name != APP_USERS.name and not name.startswith("sqlite_")


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one())  # noqa: S608


class RoundTripCounter:
    """Counts statements sent to the database (``before_cursor_execute``), plus what
    ``others`` reports (commands a non-SQL store's wrapped client sent)."""

    def __init__(self, engine: Engine, others: Callable[[], int] = lambda: 0) -> None:
        self.count = 0
        self._engine = engine
        self._others = others
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1

    def measure(self, fn: Callable[[], object]) -> int:
        """Statements and commands ``fn`` sent."""
        before, others = self.count, self._others()
        fn()
        return self.count - before + self._others() - others

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)
