"""Helpers for the cache and bus tests: a store shim, polling with a deadline, a float
clock, and a redis-server of our own that can be killed and restarted."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Generator

import pytest

from sjti.stores import MemorySecretStore

from .. import services


@pytest.fixture
def anyio_backend() -> str:
    """redis.asyncio and the cache's async flights are asyncio-only."""
    return "asyncio"


class StoreSource:
    """``load_secret`` over the in-memory store (until stores grow it), counting calls."""

    def __init__(self, store: MemorySecretStore) -> None:
        self.store = store
        self.calls = 0

    def load_secret(self, user_id: str) -> bytes | None:
        self.calls += 1
        key = self.store.load(user_id)
        return None if key is None else key.secret_bytes()


class FloatClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed; the last answer."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(0.005)
    return True


class RedisProcess:
    """A redis-server on a fixed free port that a test may kill -9 and start again."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = services._free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv from a found binary
            [*argv, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not services._wait_for("127.0.0.1", self.port):
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


@pytest.fixture
def own_redis() -> Generator[RedisProcess, None, None]:
    """A redis-server only this test uses, or a skip (a failure in CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = RedisProcess(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
