"""Attacks on the /me hot path's held connections (users.UserRows on stores/_lookup's Lane),
on SQLite (WAL) and PostgreSQL: a held connection must never answer from a snapshot older
than a committed revocation, must fail closed (503) when its driver breaks and then be
replaced, must never be shared by two threads, and the row it reads must carry what the
user layer and the admin check need (devices, deletion, role) as of this request."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from sjti.server.app import create_app
from sjti.server.db import users
from sjti.server.routes.me import end_device, logout_everywhere
from sjti.server.services import Services
from sjti.server.users import set_role

from .test_device_granularity import accepted, register, sid_of, sign_in
from .test_hot_path import bearer
from .test_hot_path import services as services  # the fixture: SQLite and PostgreSQL

with warnings.catch_warnings():  # it prefers httpx2; httpx is what this project has
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def held(services: Services) -> list[Any]:
    """The DBAPI connections the user-row lane holds between requests."""
    return [c.dbapi_connection for c in services.user_rows._lane._idle]


def in_transaction(dbapi_connection: Any) -> bool:
    """Whether the driver connection sits inside a transaction (SQLite: a read snapshot)."""
    if hasattr(dbapi_connection, "in_transaction"):  # sqlite3
        return bool(dbapi_connection.in_transaction)
    from psycopg.pq import TransactionStatus

    return bool(dbapi_connection.info.transaction_status != TransactionStatus.IDLE)


def delete_user(services: Services, user_id: str) -> None:
    """Delete the user's row (the service has no such route; an operator's SQL can),
    with every row that refers to anything (this test's database has one user)."""
    with services.engine.begin() as conn:
        for table in reversed(users.metadata.sorted_tables):
            if table.foreign_keys:
                conn.execute(sa.delete(table))
        conn.execute(sa.delete(users).where(users.c.id == user_id))


def test_a_held_connection_sees_every_revocation_committed_after_its_last_read(
    services: Services,
) -> None:
    """Stale snapshot: the lane's connection read the row, stays held (outside any
    transaction, on either database), and still sees a device sign-out, a sign-out
    everywhere and a deleted row that other connections committed afterwards."""
    user_id = register(services, "alice")
    phone, laptop = sign_in(services, "alice", "phone"), sign_in(services, "alice", "laptop")
    assert accepted(services, phone)
    assert accepted(services, laptop)
    assert services.user_rows.with_key("nobody") is None  # a miss leaves nothing open either
    connections = held(services)
    assert connections
    assert not any(in_transaction(c) for c in connections)

    assert end_device(services, user_id, sid_of(services, phone))
    assert not accepted(services, phone)
    assert accepted(services, laptop)
    logout_everywhere(services, user_id)
    assert not accepted(services, laptop)

    fresh = sign_in(services, "alice", "tablet")
    assert accepted(services, fresh)
    delete_user(services, user_id)
    assert not accepted(services, fresh)
    assert held(services) == connections  # the same held connections answered throughout
    assert not any(in_transaction(c) for c in connections)


def test_a_demoted_admin_is_refused_on_the_next_request(services: Services) -> None:
    """The async admin check reads the role from this request's row: no stale role."""
    with TestClient(create_app(services.settings)) as client:
        headers = bearer(client, "root")
        user_id = client.get("/me", headers=headers).json()["id"]
        assert client.get("/admin/revocations", headers=headers).status_code == 403
        set_role(services.engine, user_id, "admin")
        assert client.get("/admin/revocations", headers=headers).status_code == 200
        set_role(services.engine, user_id, "user")
        refused = client.get("/admin/revocations", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "insufficient_scope"


def break_held(services: Services) -> None:
    """Break the lane's held connections under it, as a dead server or file would."""
    [connection] = held(services)
    if hasattr(connection, "in_transaction"):  # sqlite3: a closed handle
        connection.close()
        return
    with services.engine.begin() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": connection.info.backend_pid}
        )


def test_a_broken_held_connection_fails_closed_then_is_replaced(services: Services) -> None:
    """A driver error mid-read is 503 (never an accepted token, never a 500), and the
    broken connection is dropped: the next request reads on a new one."""
    with TestClient(create_app(services.settings)) as client:
        headers = bearer(client, "bob")
        app_services: Services = client.app.state.services  # type: ignore[attr-defined]
        assert client.get("/me", headers=headers).status_code == 200
        [before] = held(app_services)
        break_held(app_services)
        answer = client.get("/me", headers=headers)
        assert answer.status_code == 503
        assert held(app_services) == []
        assert client.get("/me", headers=headers).status_code == 200
        [after] = held(app_services)
        assert after is not before


def test_concurrent_reads_never_share_a_connection(services: Services) -> None:
    """Worker threads reading at once each get their own row (one connection per read:
    two threads on one cursor would mix rows or raise)."""
    ids = [register(services, f"user{i}") for i in range(6)]
    barrier = threading.Barrier(len(ids))
    wrong: list[str] = []

    def read(user_id: str) -> None:
        barrier.wait()
        for _ in range(40):
            try:
                row = services.user_rows.with_key(user_id)
            except BaseException as exc:  # reported by the assert below
                wrong.append(repr(exc))
                return
            if row is None or row["id"] != user_id:
                wrong.append(user_id)

    threads = [threading.Thread(target=read, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    connections = held(services)
    assert len({id(c) for c in connections}) == len(connections) <= 4
