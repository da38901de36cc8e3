"""Shared fixtures: keys for every algorithm (made once), a frozen clock, a policy."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Generator, Iterator
from functools import cache
from pathlib import Path

import pytest

from sjti import BoundaryVerifier, ClaimsPolicy, Issuer, SigningKey, UserKey, UserVerifier
from sjti.testing import FrozenClock

from . import services

NOW = 1_800_000_000
ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
ALGORITHMS = (
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip


@cache
def key_for(alg: str) -> SigningKey:
    """One key per algorithm for the whole run (RSA generation is slow)."""
    return SigningKey.generate(alg)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def policy() -> ClaimsPolicy:
    return ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def hs_key() -> SigningKey:
    return key_for("HS256")


@pytest.fixture
def user_key() -> UserKey:
    return UserKey.generate()


@pytest.fixture
def issuer(hs_key: SigningKey, clock: FrozenClock) -> Issuer:
    return Issuer(hs_key, issuer=ISSUER, audience=AUDIENCE, clock=clock)


@pytest.fixture
def boundary(hs_key: SigningKey, policy: ClaimsPolicy, clock: FrozenClock) -> BoundaryVerifier:
    return BoundaryVerifier(hs_key, policy, clock=clock)


@pytest.fixture
def verifier(boundary: BoundaryVerifier) -> UserVerifier:
    return UserVerifier(boundary)


_django_selected = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    global _django_selected
    _django_selected = any(item.nodeid.startswith("tests/test_django.py") for item in items)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """The Django child runs start in the background when the suite reaches tests/core
    (tests/_django_runs.py), if this session runs them."""
    if _django_selected and nodeid.startswith("tests/core/"):
        from ._django_runs import start_early

        start_early()


def pytest_sessionfinish(session: pytest.Session) -> None:
    from ._django_runs import stop_early

    stop_early()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """In CI (SJTI_REQUIRE_SERVICES=1) a skipped service or browser test is a failure, not
    a pass."""
    report = yield
    result = report.get_result()  # type: ignore[attr-defined]
    if (
        result.skipped
        and any(item.get_closest_marker(m) is not None for m in ("service", "browser"))
        and os.environ.get("SJTI_REQUIRE_SERVICES") == "1"
    ):
        result.outcome = "failed"
        result.longrepr = f"service test skipped while SJTI_REQUIRE_SERVICES=1: {result.longrepr}"


@pytest.fixture(scope="session")
def postgres_server_url() -> Generator[str, None, None]:
    """A PostgreSQL server URL (SQLAlchemy form), or a skip (a failure in CI)."""
    url = services.configured_postgres_url()
    if services.postgres_answers(url):
        yield url
        return
    with services.throwaway_postgres() as started:
        if started is None:
            pytest.skip(f"no PostgreSQL at {url} and none could be started")
        yield started


@contextlib.contextmanager
def _scratch_database(server_url: str) -> Iterator[str]:
    """``CREATE DATABASE sjti_test_<hex>`` on the server, dropped (forced) afterwards."""
    import secrets

    import psycopg

    name = f"sjti_test_{secrets.token_hex(4)}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Generator[str, None, None]:
    """A fresh database for this test session, dropped at the end."""
    with _scratch_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def own_postgres_database(postgres_server_url: str) -> Generator[str, None, None]:
    """A database for this test alone: a service started on it sees only its own users
    (and their keys, wrapped under this test's KEK)."""
    with _scratch_database(postgres_server_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def service_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/service.db"
    url: str = request.getfixturevalue("own_postgres_database")
    return url


@pytest.fixture(scope="session")
def redis_url() -> Generator[str, None, None]:
    """A Redis server URL, or a skip (a failure in CI)."""
    url = services.configured_redis_url()
    if services.redis_answers(url):
        yield url
        return
    with services.throwaway_redis() as started:
        if started is None:
            pytest.skip(f"no Redis at {url} and none could be started")
        yield started


@pytest.fixture
def own_redis() -> Generator[services.RedisProcess, None, None]:
    """A redis-server only this test uses, or a skip (a failure in CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = services.RedisProcess(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
