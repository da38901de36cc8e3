"""The SQLAlchemy engine sjti opens from ``database_url``: SQLite private, in WAL mode.

The pool holds its connections. SQLAlchemy's default (5 pooled + 10 overflow) closes every
overflow connection as it comes back, so a service whose worker threads (anyio runs up to
40) query at once opened a new PostgreSQL connection every few requests (~2 000 per 20 s
of load, each a backend fork and an authentication). :data:`POOL_SIZE` connections are
kept (the up to 8 that two lookup lanes hold, the store's and the service's user rows,
plus 12 for request threads and the bus); a burst beyond them borrows up to
:data:`MAX_OVERFLOW` more, closed on return, so that pool plus overflow covers the
threadpool and no thread waits on the pool.
A connection is recycled after an hour instead of being pinged before every checkout (a
round trip per query): one that fails is invalidated by SQLAlchemy, with every older one,
and the store answers BackendError (fail closed).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["MAX_OVERFLOW", "POOL_SIZE", "make_engine", "pool_options"]

# Per process. Each lookup lane keeps up to 4 (stores/_lookup.py: the store's and the
# service's user rows); the rest serve request threads, the bus's event log reads and
# writes. 2 workers: 40 connections.
POOL_SIZE: Final = 20
MAX_OVERFLOW: Final = 20  # 40 in all: anyio's default threadpool


def _create_private(path: str | None) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask): it holds
    password hashes and wrapped keys. SQLite gives its -wal/-shm files the same mode."""
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def pool_options(url: str) -> dict[str, Any]:
    """``create_engine`` pool options for ``url``: a fixed pool for a server database,
    SQLAlchemy's own choice for an in-memory SQLite (one shared connection)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and (
        not parsed.database or parsed.database == ":memory:" or "mode=memory" in url
    ):
        return {}
    return {
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "pool_timeout": 30,
        "pool_recycle": 3600,
    }


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite waits for locks and runs in WAL mode (several workers)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    if url.startswith("sqlite"):
        _create_private(make_url(url).database)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **pool_options(url)
        )

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, **pool_options(url))
