"""The same service on PostgreSQL + Redis: two processes, revoke on one, refused by the other."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from sjti import Kek, KekRing

from ..services import RedisProcess
from .harness import PASSWORD, Server, bearer, login, refresh, register

pytestmark = pytest.mark.service


def test_revocation_through_one_node_is_refused_by_the_other(
    tmp_path: Path, own_postgres_database: str, redis_url: str
) -> None:
    """Logout and admin revocation on node A; node B (its own cache) refuses the tokens."""
    env = {
        "SJTI_DATABASE_URL": own_postgres_database,
        "SJTI_REDIS_URL": redis_url,
        "SJTI_KEK": KekRing([Kek.generate("k1")]).to_config(),
        "SJTI_ENV": "production",
    }
    a = Server(tmp_path, env)
    b = Server(tmp_path, env)  # same key file, same database, its own cache and bus
    try:
        with a.client() as ca, b.client() as cb:
            assert cb.get("/readyz").json()["bus"] == "connected"
            register(ca, "pg-alice")
            tokens = login(ca, "pg-alice")
            assert cb.get("/me", headers=bearer(tokens)).status_code == 200  # cached on B
            assert ca.post("/logout", headers=bearer(tokens)).status_code == 204
            deadline = time.monotonic() + 2
            status = 200
            while status == 200 and time.monotonic() < deadline:
                status = cb.get("/me", headers=bearer(tokens)).status_code
            assert status == 401
            assert refresh(cb, tokens["refresh_token"]).status_code == 400

            a.make_admin("root")
            admin = login(ca, "root")
            register(cb, "pg-bob")
            bob = login(cb, "pg-bob")
            assert cb.get("/me", headers=bearer(bob)).status_code == 200
            body = {"user_ids": [cb.get("/me", headers=bearer(bob)).json()["id"]]}
            assert (
                ca.post("/admin/revocations", json=body, headers=bearer(admin)).json()["count"] == 1
            )
            time.sleep(0.2)
            assert cb.get("/me", headers=bearer(bob)).status_code == 401
            assert login(cb, "pg-bob", PASSWORD)["access_token"]
    finally:
        a.stop()
        b.stop()


def test_several_workers_share_one_key_file(tmp_path: Path, redis_url: str) -> None:
    """``--workers 2`` on a fresh directory: one key file, every worker signs verifiably."""
    server = Server(tmp_path, {"SJTI_REDIS_URL": redis_url}, workers=2)
    try:
        with server.client() as client:
            register(client, "w-alice")
            for _ in range(6):  # new connections land on either worker
                with server.client() as fresh:
                    tokens = login(fresh, "w-alice")
                    assert fresh.get("/me", headers=bearer(tokens)).status_code == 200
            assert client.post("/logout", headers=bearer(tokens)).status_code == 204
            time.sleep(0.2)
            for _ in range(4):
                with server.client() as fresh:
                    assert fresh.get("/me", headers=bearer(tokens)).status_code == 401
    finally:
        server.stop()
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_logout_and_admin_revocation_while_redis_is_down(
    tmp_path: Path, own_postgres_database: str, own_redis: RedisProcess
) -> None:
    """Redis killed first: logout still answers 204 and ends everything; the event reaches
    the other node once Redis is back (it refuses meanwhile: its cache is bypassed)."""
    env = {
        "SJTI_DATABASE_URL": own_postgres_database,
        "SJTI_REDIS_URL": own_redis.url,
        "SJTI_KEK": KekRing([Kek.generate("k1")]).to_config(),
        "SJTI_ENV": "production",
    }
    a, b = Server(tmp_path, env), Server(tmp_path, env)
    try:
        with a.client() as ca, b.client() as cb:
            register(ca, "outage-alice")
            register(ca, "outage-bob")
            a.make_admin("root-outage")
            alice, bob, admin = (
                login(ca, n) for n in ("outage-alice", "outage-bob", "root-outage")
            )
            for tokens in (alice, bob):
                assert cb.get("/me", headers=bearer(tokens)).status_code == 200  # cached on B
            bob_id = cb.get("/me", headers=bearer(bob)).json()["id"]

            own_redis.kill9()
            assert ca.post("/logout", headers=bearer(alice)).status_code == 204
            assert refresh(ca, alice["refresh_token"]).status_code == 400
            answer = ca.post(
                "/admin/revocations",
                json={"user_ids": [bob_id], "reason": "outage test"},
                headers=bearer(admin),
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["count"] == 1
            assert refresh(cb, bob["refresh_token"]).status_code == 400
            for tokens in (alice, bob):  # B lost its bus too: it reads through and refuses
                assert ca.get("/me", headers=bearer(tokens)).status_code == 401
                assert cb.get("/me", headers=bearer(tokens)).status_code in (401, 503)
            outage = cb.get("/readyz").json()  # correct, slower: still ready, cache bypassed
            assert (outage["ready"], outage["degraded"], outage["cache"]) == (
                True,
                True,
                "bypassed",
            )

            own_redis.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                ready = [c.get("/readyz").json() for c in (ca, cb)]
                if all(r["bus"] == "connected" and r["cache"] == "trusted" for r in ready):
                    break
                time.sleep(0.1)
            assert [r["watermark"] for r in ready] == [ready[0]["watermark"]] * 2
            for tokens in (alice, bob):
                assert cb.get("/me", headers=bearer(tokens)).status_code == 401
            # The relay publishes in the background (whether it raced Redis's return is
            # timing); what failed was relayed again, and nodes agree on the watermark above.
            assert re.search(rb"sjti_event_publish_failures [0-9.]+", ca.get("/metrics").content)
    finally:
        a.stop()
        b.stop()


def test_two_processes_on_one_sqlite_file_without_a_bus(tmp_path: Path) -> None:
    """No bus, two processes: a logout on one is refused by the other at once (no cache
    is trusted without evidence; the service verifies from the user row)."""
    a = Server(tmp_path, {})
    b = Server(tmp_path, {})  # same sjti.db, same key file, no Redis
    try:
        with a.client() as ca, b.client() as cb:
            assert cb.get("/readyz").json()["cache"] == "bypassed"
            register(ca, "lite-alice")
            tokens = login(ca, "lite-alice")
            for _ in range(3):  # warm whatever B might keep
                assert cb.get("/me", headers=bearer(tokens)).status_code == 200
            assert ca.post("/logout", headers=bearer(tokens)).status_code == 204
            assert cb.get("/me", headers=bearer(tokens)).status_code == 401  # no waiting
            assert refresh(cb, tokens["refresh_token"]).status_code == 400
    finally:
        a.stop()
        b.stop()


def test_the_cli_operates_the_service_on_postgresql(
    tmp_path: Path, own_postgres_database: str
) -> None:
    """The same commands against PostgreSQL (NOTIFY bus, SJTI_KEK): an admin made on the
    command line, a user revoked by name, refused by the running node at once."""
    env = {
        "SJTI_DATABASE_URL": own_postgres_database,
        "SJTI_KEK": KekRing([Kek.generate("k1")]).to_config(),
        "SJTI_ENV": "production",
    }
    server = Server(tmp_path, env)
    try:
        server.make_admin("pg-cli-root")
        with server.client() as client:
            admin = login(client, "pg-cli-root")
            assert client.get("/admin/revocations", headers=bearer(admin)).status_code == 200
            register(client, "pg-cli-frank")
            frank = login(client, "pg-cli-frank")
            done = server.cli(
                "revoke", "--user", "pg-cli-frank", "--database-url", own_postgres_database
            )
            assert done.returncode == 0, done.stderr
            assert client.get("/me", headers=bearer(frank)).status_code == 401
            assert refresh(client, frank["refresh_token"]).status_code == 400
            shown = server.cli("users", "show", "pg-cli-frank", "--json")
            assert json.loads(shown.stdout)["username"] == "pg-cli-frank"
    finally:
        server.stop()
