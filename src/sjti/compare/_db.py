"""Scratch databases for the comparison: engines, the contenders' own tables, measuring.

Every table here is created idempotently (``checkfirst``). ``app_users`` stands for the
application's own users table: it exists for every contender and is never counted as
revocation state. The rest belong to one strategy each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

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
    text,
)
from sqlalchemy.exc import DBAPIError

from ..errors import BackendError

__all__ = [
    "APP_USERS",
    "DENYLIST",
    "EPOCHS",
    "LIVE_JTIS",
    "SESSIONS",
    "RoundTripCounter",
    "add_app_users",
    "chunks",
    "create_tables",
    "dead_engine",
    "guarded",
    "sqlite_engine",
    "state_bytes",
]

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


def dead_engine(scratch: Path) -> Engine:
    """An engine whose every connection fails: a database file in a missing directory."""
    return create_engine(f"sqlite:///{scratch / 'no-such-dir' / 'gone.db'}")


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
    """Bytes (pages) and rows of every table and index but ``app_users``, via ``dbstat``."""
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


def _is_table(name: str, owner: str) -> bool:
    return name == owner and name != APP_USERS.name and not name.startswith("sqlite_")


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one())  # noqa: S608


class RoundTripCounter:
    """Counts statements sent to the database (``before_cursor_execute``)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1

    def measure(self, fn: Callable[[], object]) -> int:
        """Statements ``fn`` sent."""
        before = self.count
        fn()
        return self.count - before

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)
