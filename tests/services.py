"""Find (or start) the PostgreSQL and Redis the service tests need.

Order: the URL in SJTI_TEST_POSTGRES_URL / SJTI_TEST_REDIS_URL, then the machine's
defaults (127.0.0.1:5432 db ``test``, 127.0.0.1:6379), then a throwaway server started
from installed binaries. If none answers the tests skip, which CI turns into a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def _wait_for(host: str, port: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(host, port):
            return True
        time.sleep(0.1)
    return False


def postgres_answers(url: str) -> bool:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str | None]:
    """A redis-server on a free port for the session, if the binary is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv from a found binary
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0" if _wait_for("127.0.0.1", port) else None
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """initdb + pg_ctl from the installed PostgreSQL binaries, run as user postgres."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs or shutil.which("runuser") is None:
        yield None
        return
    bindir, port = bindirs[-1], _free_port()
    datadir = tempfile.mkdtemp(prefix="sjti-pg-")
    shutil.chown(datadir, "postgres")
    run = ["runuser", "-u", "postgres", "--"]
    url: str | None = None
    try:
        subprocess.run(  # noqa: S603 - fixed argv
            [*run, f"{bindir}/initdb", "-D", datadir, "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        # The server inherits pg_ctl's stdout: log to a file, never to a pipe we would
        # wait on forever.
        log, options = f"{datadir}/log", f"-p {port} -k {datadir}"
        subprocess.run(  # noqa: S603 - fixed argv
            [*run, f"{bindir}/pg_ctl", "-D", datadir, "-w", "-l", log, "-o", options, "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        candidate = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        url = candidate if postgres_answers(candidate) else None
    except (OSError, subprocess.SubprocessError):
        url = None
    try:
        yield url
    finally:
        subprocess.run(  # noqa: S603 - fixed argv
            [*run, f"{bindir}/pg_ctl", "-D", datadir, "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        shutil.rmtree(datadir, ignore_errors=True)


def configured_postgres_url() -> str:
    return os.environ.get("SJTI_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def configured_redis_url() -> str:
    return os.environ.get("SJTI_TEST_REDIS_URL", DEFAULT_REDIS_URL)


class RedisProcess:
    """A redis-server on a fixed free port that a test may kill -9 and start again."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv from a found binary
            [*argv, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_for("127.0.0.1", self.port):
            raise RuntimeError("redis-server did not start")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
