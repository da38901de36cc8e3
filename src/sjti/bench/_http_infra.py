"""What the HTTP bench runs its servers on: processes it can weigh, private databases.

* :class:`ServerProcess`: one server (a process tree when it has workers) on a free port,
  its log in a file; CPU seconds of the tree from ``/proc``; bus drops from its log.
* :func:`postgres_database`: a private database on the PostgreSQL server (other
  benchmarks may share it), whose ``pg_stat_database.sessions`` counts every connection
  a server opened (PostgreSQL 14+).
* :func:`private_redis`: a throwaway ``redis-server`` (pub/sub channels are global to a
  Redis server: a shared one would carry other benchmarks' events).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

__all__ = [
    "ServerProcess",
    "free_port",
    "postgres_database",
    "private_redis",
    "sessions_opened",
]

_TICK = os.sysconf("SC_CLK_TCK")
# the warning a bus logs when it loses its connection and the cache stops being trusted
_BUS_LOST = re.compile(r"invalidation bus \S+ lost")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers are its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found


class ServerProcess:
    """``argv`` with ``SJTI_PORT`` set, until :meth:`stop`; ``url`` once /healthz answers."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - our interpreter and module
                argv, env={**env, "SJTI_PORT": str(self.port)}, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"bench server exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("bench server did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes so far."""
        ticks = 0
        for pid in _tree(self._proc.pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / _TICK

    def bus_drops(self) -> int:
        """Times a worker logged that it lost its invalidation bus."""
        return len(_BUS_LOST.findall(self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(15)


def _admin(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def sessions_opened(url: str, name: str) -> int:
    """Connections ever opened to database ``name`` (PostgreSQL 14+)."""
    import psycopg

    with psycopg.connect(_admin(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return 0 if row is None else int(row[0])


@contextlib.contextmanager
def postgres_database(url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on ``url``'s server; its SQLAlchemy URL. Dropped after."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin(url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A ``redis-server`` of our own on a free port; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (the PostgreSQL shape needs it)")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - the installed binary, fixed flags
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(15)
