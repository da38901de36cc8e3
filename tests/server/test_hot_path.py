"""The bearer request's hot path: one worker-thread hop, one statement, the same row.

Speed is the HTTP bench's business (``python -m sjti.bench.http``); these pin the shape
that makes it fast, so a refactor that quietly adds a thread hop or a second query fails
here instead of in a benchmark nobody reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from sjti.server.app import create_app
from sjti.server.db import users
from sjti.server.services import Services
from sjti.server.settings import Settings

from .test_races import PASSWORD

with warnings.catch_warnings():  # it prefers httpx2; httpx is what this project has
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=url,
        key_file=str(tmp_path / "keys.json"),
        login_max_failures=10_000,
        login_max_failures_per_ip=10_000,
        registrations_per_ip=10_000,
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(f"sqlite:///{tmp_path}/hot.db", tmp_path))
    with TestClient(app) as opened:
        yield opened


def bearer(client: TestClient, name: str) -> dict[str, str]:
    client.post("/users", json={"username": name, "password": PASSWORD})
    answer = client.post(
        "/token", data={"grant_type": "password", "username": name, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the callables each request ran in a worker thread (FastAPI, Starlette and
    the service all go through ``anyio.to_thread.run_sync``)."""
    seen: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return seen


def test_me_hops_to_a_worker_thread_once(client: TestClient, hops: list[str]) -> None:
    """/me runs its one blocking step (the verification and its read) in one worker
    thread; the dependencies and the route stay on the event loop (a hop costs ~80 µs
    of CPU, more than the read)."""
    headers = bearer(client, "alice")
    hops.clear()
    answer = client.get("/me", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["username"] == "alice"
    assert hops == ["verify_access_token"]


def test_a_refused_token_also_hops_once(client: TestClient, hops: list[str]) -> None:
    """A revoked token is refused by the same single hop (401, its stable code)."""
    headers = bearer(client, "bob")
    assert client.post("/logout", headers=headers).status_code == 204
    hops.clear()
    answer = client.get("/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "revoked"
    assert hops == ["verify_access_token"]


@pytest.fixture
def services(service_database_url: str, tmp_path: Path) -> Iterator[Services]:
    url = service_database_url
    built = Services.build(settings_for(url, tmp_path))
    yield built
    built.close()


def test_user_rows_reads_what_sqlalchemy_reads(services: Services) -> None:
    """The compiled read returns the row a Core select returns, types converted (aware
    datetimes on SQLite too), in one statement; an unknown id is ``None``."""
    app = create_app(services.settings)
    with TestClient(app) as client:
        bearer(client, "carol")  # a user with a key and a signed-in device
    with services.engine.connect() as conn:
        [expected] = conn.execute(sa.select(users)).mappings().all()
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(services.engine, "before_cursor_execute", count)
    try:
        row = services.user_rows.with_key(expected["id"])
        missing = services.user_rows.with_key("no-such-user")
    finally:
        sa.event.remove(services.engine, "before_cursor_execute", count)
    assert row is not None
    assert row == {name: expected[name] for name in row}
    assert row["created_at"].tzinfo is not None
    assert row["token_secret"]
    assert row["token_devices"]
    assert "password_hash" not in row
    assert missing is None
    assert len(statements) == 2


def test_user_rows_give_their_connections_back(services: Services) -> None:
    """The read keeps a connection for the next one, and closing gives it back."""
    pool = services.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    before = pool.checkedout()
    assert services.user_rows.with_key("nobody") is None
    assert pool.checkedout() == before + 1  # held for the next read
    services.user_rows.close()
    assert pool.checkedout() == before
