"""The soak's private world: a PostgreSQL cluster, a Redis and ``sjti serve`` nodes.

Everything here is started by the soak itself, on free loopback ports, and can be killed
and started again on the same port: that is what the fault injector needs. Nothing here
talks to a server the soak did not start.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

__all__ = ["MissingTool", "PrivatePostgres", "PrivateRedis", "ServerNode", "free_port", "missing"]

_LOOPBACK = "127.0.0.1"


class MissingTool(RuntimeError):
    """A binary the soak needs (initdb, pg_ctl, redis-server) is not installed."""


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((_LOOPBACK, port), timeout=1):
        return True
    return False


def _wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(port):
            return True
        time.sleep(0.05)
    return False


def _postgres_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for bindir in reversed(found):
        if os.path.exists(f"{bindir}/initdb") and os.path.exists(f"{bindir}/pg_ctl"):
            return bindir
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb and shutil.which("pg_ctl") else None


def missing() -> list[str]:
    """The binaries this machine lacks for a soak (empty: it can run)."""
    lacks: list[str] = []
    if _postgres_bindir() is None:
        lacks.append("initdb/pg_ctl")
    if shutil.which("redis-server") is None:
        lacks.append("redis-server")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        lacks.append("runuser")
    return lacks


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` on a free port, trust auth; run as ``postgres`` when root."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            raise MissingTool("initdb/pg_ctl not found (install PostgreSQL)")
        self._bindir = bindir
        self.port = free_port()
        self.datadir = tempfile.mkdtemp(prefix="sjti-soak-pg-")
        # PostgreSQL refuses to run as root: as root, hand the cluster to user postgres.
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@{_LOOPBACK}:{self.port}/postgres"
        self.dsn = f"postgresql://postgres@{_LOOPBACK}:{self.port}/postgres"
        self.closed = False  # after close, a fault's restart does nothing

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        # The server inherits pg_ctl's stdout: log to a file, never to a pipe.
        subprocess.run(  # noqa: S603 - fixed argv from an installed binary
            [*self._as, f"{self._bindir}/pg_ctl", "-D", self.datadir, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )

    def init(self) -> None:
        """Create the cluster (``initdb``) and start it."""
        subprocess.run(  # noqa: S603 - fixed argv from an installed binary
            [*self._as, f"{self._bindir}/initdb", "-D", self.datadir, "-A", "trust",
             "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip
        self.start()

    def start(self) -> None:
        if self.closed:
            return
        # fsync off: no OS crash is simulated, and an immediate stop keeps every commit
        # that reached the kernel, so durability of committed rows is still tested.
        options = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses={_LOOPBACK} "
            "-c fsync=off -c max_connections=200"
        )
        self._pg_ctl("-w", "-l", f"{self.datadir}/log", "-o", options, "start")

    def stop_immediate(self) -> None:
        """Crash-like stop: no checkpoint, clients cut (``pg_ctl stop -m immediate``)."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self._pg_ctl("-w", "-m", "immediate", "stop", timeout=30)
        shutil.rmtree(self.datadir, ignore_errors=True)


class PrivateRedis:
    """``redis-server`` on a free port, no persistence; killable and restartable in place."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingTool("redis-server not found (install Redis)")
        self._binary = binary
        self.port = free_port()
        self.url = f"redis://{_LOOPBACK}:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None
        self.closed = False

    def start(self) -> None:
        if self.closed:
            return
        argv = [self._binary, "--port", str(self.port), "--bind", _LOOPBACK]
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv from an installed binary
            [*argv, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_port(self.port, 15):
            raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """``kill -9``."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def close(self) -> None:
        self.closed = True
        self.kill()


class ServerNode:
    """One ``python -m sjti.cli serve`` process on a fixed port, killable and restartable."""

    def __init__(self, index: int, workdir: Path, env: dict[str, str]) -> None:
        self.index = index
        self.port = free_port()
        self.url = f"http://{_LOOPBACK}:{self.port}"
        self._workdir = workdir
        self._env = env
        self.log = workdir / f"server-{index}-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.closed = False

    def start(self) -> None:
        if self.closed:
            return
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our interpreter and module
                [sys.executable, "-m", "sjti.cli", "serve", "--port", str(self.port)],
                cwd=self._workdir,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server {self.index} exited:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server {self.index} did not become ready in {seconds:.0f} s")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: no shutdown hook runs, connections are cut."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def close(self) -> None:
        self.closed = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
