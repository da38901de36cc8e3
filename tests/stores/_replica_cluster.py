"""A private PostgreSQL primary and a streaming standby of it, on loopback ports.

The primary is the soak's :class:`~sjti.bench._soak_infra.PrivatePostgres` (``initdb``
gives ``wal_level=replica``, WAL senders and trusting replication lines on loopback);
the standby is ``pg_basebackup -R`` of it, started on its own port. Tests pause and
resume its replay to make replication lag deterministic.
"""

from __future__ import annotations

import os
import subprocess
import time

import psycopg

from sjti.bench._soak_infra import PrivatePostgres

__all__ = ["ReplicaCluster", "Standby"]


class Standby(PrivatePostgres):
    """A hot standby streaming from ``primary`` (same binaries, its own port and dir)."""

    def __init__(self, primary: PrivatePostgres) -> None:
        super().__init__()
        self.primary = primary

    def init(self) -> None:
        basebackup = f"{self._bindir}/pg_basebackup"
        if not os.path.exists(basebackup):  # pragma: no cover - a partial install
            raise RuntimeError("pg_basebackup not found beside initdb")
        subprocess.run(  # noqa: S603 - fixed argv from an installed binary
            [*self._as, basebackup, "-D", self.datadir, "-h", "127.0.0.1",
             "-p", str(self.primary.port), "-U", "postgres", "-R", "-X", "stream",
             "--no-sync", "--checkpoint=fast"],
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip
        self.start()

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> object:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(statement.encode(), params).fetchone()
        return None if row is None else row[0]

    def pause(self) -> None:
        """Stop applying WAL: the standby keeps serving its last snapshot."""
        self.sql("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def catch_up(self, seconds: float = 30) -> None:
        """Wait until the standby replayed everything the primary had written when asked."""
        with psycopg.connect(self.primary.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            done = self.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
            if done:
                return
            time.sleep(0.01)
        raise TimeoutError("the standby did not catch up")


class ReplicaCluster:
    """Start both (primary first), close both."""

    def __init__(self) -> None:
        self.primary = PrivatePostgres()
        self.standby = Standby(self.primary)

    def start(self) -> ReplicaCluster:
        self.primary.init()
        self.standby.init()
        return self

    def close(self) -> None:
        self.standby.close()
        self.primary.close()
