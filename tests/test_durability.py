"""A revocation that returned is durable: it survives kill -9 of the process that made it,
and an immediate (crash-like) restart of PostgreSQL. Issue 3, item 7."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sjti import Issuer, Kek, KekRing, RevokedTokenError, SigningKey, UserKey, UserVerifier
from sjti.stores.sql import SqlSecretStore, upgrade
from sjti.testing import FrozenClock

from . import services
from .conftest import AUDIENCE, ISSUER

# The child revokes, says so, then waits to be killed: nothing after the call may matter.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from sqlalchemy import create_engine
    from sjti import KekRing
    from sjti.stores.sql import SqlSecretStore
    store = SqlSecretStore(create_engine(os.environ["URL"]), KekRing.from_config(os.environ["KEK"]))
    store.revoke("alice", actor="durability-test")
    print("returned", flush=True)
    time.sleep(600)
    """
)


def _revoke_in_child_then_kill_9(url: str, ring: KekRing) -> None:
    env = {**os.environ, "URL": url, "KEK": ring.to_config()}
    child = subprocess.Popen(  # noqa: S603 - our interpreter, fixed script
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "returned"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def assert_revoked(url: str, ring: KekRing, old_token: str, verifier: UserVerifier) -> None:
    engine = sa.create_engine(url)
    try:
        store = SqlSecretStore(engine, ring)
        assert [record.actor for record in store.audit_log()][:1] == ["durability-test"]
        with pytest.raises(RevokedTokenError):
            verifier.verify_with(old_token, store.ensure)
    finally:
        engine.dispose()


def _token_for_alice(url: str, ring: KekRing, issuer: Issuer) -> str:
    engine = sa.create_engine(url)
    try:
        upgrade(engine)
        key: UserKey = SqlSecretStore(engine, ring).ensure("alice")
        return issuer.issue("alice", key)
    finally:
        engine.dispose()


@pytest.fixture
def setup(
    verifier: UserVerifier, hs_key: SigningKey, clock: FrozenClock
) -> tuple[KekRing, Issuer, UserVerifier]:
    issuer = Issuer(hs_key, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    return KekRing([Kek.generate("durable")]), issuer, verifier


def test_sqlite_revocation_survives_kill_9(
    tmp_path: Path, setup: tuple[KekRing, Issuer, UserVerifier]
) -> None:
    """The embedded default: once revoke() returned, a kill -9 cannot undo it."""
    ring, issuer, verifier = setup
    url = f"sqlite:///{tmp_path / 'sjti.db'}"
    token = _token_for_alice(url, ring, issuer)
    _revoke_in_child_then_kill_9(url, ring)
    assert_revoked(url, ring, token, verifier)


class CrashablePostgres:
    """A private PostgreSQL cluster (initdb) that the test may restart in immediate mode."""

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs or shutil.which("runuser") is None:
            pytest.skip("PostgreSQL server binaries or runuser not installed")
        self.bindir = bindirs[-1]
        self.port = services._free_port()
        self.datadir = tempfile.mkdtemp(prefix="sjti-pg-durable-")
        shutil.chown(self.datadir, "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - fixed argv; runuser found on PATH
            ["runuser", "-u", "postgres", "--", *args],  # noqa: S607 - runuser from PATH
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def _ctl(self, *args: str) -> None:
        log, options = f"{self.datadir}/log", f"-p {self.port} -k {self.datadir}"
        self._pg(f"{self.bindir}/pg_ctl", "-D", self.datadir, "-w", "-l", log, "-o", options, *args)

    def start(self) -> None:
        self._pg(f"{self.bindir}/initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres")
        self._ctl("start")

    def crash_restart(self) -> None:
        """Immediate stop = no shutdown checkpoint: recovery must replay the WAL."""
        self._ctl("-m", "immediate", "restart")

    def stop(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)


@pytest.fixture
def crashable_postgres() -> Iterator[CrashablePostgres]:
    server = CrashablePostgres()
    try:
        server.start()
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(server.datadir, ignore_errors=True)
        pytest.skip("could not start a private PostgreSQL cluster")
    yield server
    server.stop()


@pytest.mark.service
def test_postgres_revocation_survives_kill_9_and_a_crash_restart(
    crashable_postgres: CrashablePostgres, setup: tuple[KekRing, Issuer, UserVerifier]
) -> None:
    """Committed before returning: neither the client dying nor the server crashing loses it."""
    ring, issuer, verifier = setup
    url = crashable_postgres.url
    token = _token_for_alice(url, ring, issuer)
    _revoke_in_child_then_kill_9(url, ring)
    crashable_postgres.crash_restart()
    assert_revoked(url, ring, token, verifier)
