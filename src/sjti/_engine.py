"""The SQLAlchemy engine sjti opens from ``database_url``: SQLite private, in WAL mode."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["make_engine"]


def _create_private(path: str | None) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask): it holds
    password hashes and wrapped keys. SQLite gives its -wal/-shm files the same mode."""
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite waits for locks and runs in WAL mode (several workers)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    if url.startswith("sqlite"):
        _create_private(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)
