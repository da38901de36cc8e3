"""``sjti.configure()``: one call wires keys, store, cache, bus, issuer and verifiers, on
the real databases and the real bus."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine

import sjti
from sjti import ConfigurationError, Kek, KekRing, RevokedTokenError, Settings
from sjti.cache.pg_bus import PgNotifyBus
from sjti.cache.poll_bus import LogPollBus
from sjti.cache.redis_bus import RedisBus
from sjti.stores import MemorySecretStore
from sjti.stores.sql import AppUsersTable, SqlSecretStore, secret_columns

KEK = KekRing([Kek.generate("k1")]).to_config()


def sqlite_settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/app.db", key_file=str(tmp_path / "keys.json")
    ).replace(**changes)


def refused_within(auth: sjti.Auth, token: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            auth.verify(token)
        except RevokedTokenError:
            return True
        time.sleep(0.02)
    return False


def test_in_memory_wiring_issues_verifies_and_revokes_without_writing_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with sjti.configure(
        Settings(database_url="memory://", issuer="https://a", audience="api")
    ) as auth:
        assert isinstance(auth.store, MemorySecretStore)
        assert (auth.bus, auth.engine) == (None, None)
        token = auth.issue("alice", claims={"scope": "read"})
        claims = auth.verify(token)
        assert (claims["sub"], claims["iss"], claims["aud"], claims["scope"]) == (
            "alice",
            "https://a",
            "api",
            "read",
        )
        assert auth.boundary.verify(token)["sub"] == "alice"
        auth.revoke("alice", actor="test", reason="test")
        with pytest.raises(RevokedTokenError):
            auth.verify(token)
    assert list(tmp_path.iterdir()) == []


def test_keyword_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SJTI_DATABASE_URL", "memory://")
    monkeypatch.setenv("SJTI_ISSUER", "https://from-env")
    monkeypatch.setenv("SJTI_AUDIENCE", "env-aud")
    with sjti.configure(issuer="https://from-code") as auth:
        claims = auth.verify(auth.issue("bob"))
    assert (claims["iss"], claims["aud"]) == ("https://from-code", "env-aud")


@pytest.mark.anyio
async def test_averify_checks_both_layers() -> None:
    with sjti.configure(Settings(database_url="memory://")) as auth:
        token = auth.issue("carol")
        assert (await auth.averify(token))["sub"] == "carol"
        auth.revoke("carol", actor="t", reason="t")
        with pytest.raises(RevokedTokenError):
            await auth.averify(token)


def test_sqlite_without_a_bus_bypasses_the_cache_and_sees_another_process_revoke(
    tmp_path: Path,
) -> None:
    """Two wirings on one SQLite file (two processes' worth): no bus, so every lookup reads
    the database and a revocation by one is refused by the other at once."""
    settings = sqlite_settings(tmp_path)
    with sjti.configure(settings) as first, sjti.configure(settings) as second:
        assert isinstance(first.store, SqlSecretStore)
        assert first.bus is None
        token = first.issue("dave")
        assert second.verify(token)["sub"] == "dave"
        first.revoke("dave", actor="t", reason="t")
        with pytest.raises(RevokedTokenError):
            second.verify(token)
        assert second.user_keys.stats().bus_state == "none"
    key_file = tmp_path / "keys.json"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "app.db").st_mode) == 0o600


def test_sqlite_with_log_polling_trusts_the_cache_and_catches_up(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, cache_without_bus="poll", poll_interval=0.05)
    with sjti.configure(settings) as first, sjti.configure(settings) as second:
        assert isinstance(second.bus, LogPollBus)
        assert second.wait_ready(5)
        token = first.issue("erin")
        assert second.verify(token)["sub"] == "erin"  # now cached in `second`
        first.revoke("erin", actor="t", reason="t")
        assert refused_within(second, token, 5)


def test_the_apps_own_users_table_holds_the_keys(tmp_path: Path) -> None:
    """``layout=AppUsersTable(users)``: the key columns are added to the app's table."""
    url = f"sqlite:///{tmp_path}/app.db"
    existing = Table("users", MetaData(), Column("id", String(32), primary_key=True))
    engine = create_engine(url)
    existing.create(engine)
    with engine.begin() as conn:
        conn.execute(existing.insert().values(id="u1"))
    engine.dispose()
    users = Table(
        "users", MetaData(), Column("id", String(32), primary_key=True), *secret_columns()
    )
    layout = AppUsersTable(users)
    with sjti.configure(sqlite_settings(tmp_path), layout=layout) as auth:
        assert isinstance(auth.store, SqlSecretStore)
        assert auth.store.layout is layout
        token = auth.issue("u1")
        assert auth.verify(token)["sub"] == "u1"


def test_migrate_false_leaves_the_schema_to_the_operator(tmp_path: Path) -> None:
    with (
        sjti.configure(sqlite_settings(tmp_path), migrate=False) as auth,
        pytest.raises(sjti.BackendError),
    ):
        auth.issue("frank")
    seen: list[object] = []
    with sjti.configure(sqlite_settings(tmp_path), migrate=seen.append) as auth:
        assert seen == [auth.engine]


def test_the_reference_service_database_cannot_be_memory() -> None:
    from sjti.server.services import Database

    with pytest.raises(ConfigurationError, match="not memory://"):
        Database.open(Settings(database_url="memory://"))


@pytest.mark.service
def test_postgresql_wires_notify_and_another_node_refuses_at_once(
    own_postgres_database: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=own_postgres_database, key_file=str(tmp_path / "k.json"))
    with sjti.configure(settings) as first, sjti.configure(settings) as second:
        assert isinstance(second.bus, PgNotifyBus)
        assert second.wait_ready(10)
        token = first.issue("gina")
        assert second.verify(token)["sub"] == "gina"
        first.revoke("gina", actor="t", reason="t")
        assert refused_within(second, token, 5)


@pytest.mark.service
def test_redis_url_wires_the_redis_bus(
    own_postgres_database: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=own_postgres_database,
        redis_url=redis_url,
        key_file=str(tmp_path / "k.json"),
        kek=KEK,
    )
    with sjti.configure(settings) as first, sjti.configure(settings) as second:
        assert isinstance(second.bus, RedisBus)
        assert second.wait_ready(10)
        assert first.kek_ring.primary.kid == "k1"
        token = first.issue("hank")
        assert second.verify(token)["sub"] == "hank"
        first.revoke("hank", actor="t", reason="t")
        assert refused_within(second, token, 5)


def test_sign_in_and_revoke_one_device_in_memory() -> None:
    with sjti.configure(Settings(database_url="memory://")) as auth:
        phone, laptop = auth.sign_in("ivy"), auth.sign_in("ivy", claims={"scope": "read"})
        assert auth.verify(laptop.token)["scope"] == "read"
        assert auth.revoke_device("ivy", phone.sid, actor="ivy", reason="lost").count == 1
        with pytest.raises(RevokedTokenError):
            auth.verify(phone.token)
        assert auth.verify(laptop.token)["sid"] == laptop.sid


@pytest.mark.service
def test_a_device_signed_out_on_one_node_is_refused_by_another(
    own_postgres_database: str, tmp_path: Path
) -> None:
    """Two nodes on PostgreSQL: the sign-in reaches the other node's cache before it
    returns (the new device is accepted there at once), and so does the sign-out."""
    settings = Settings(database_url=own_postgres_database, key_file=str(tmp_path / "k.json"))
    with sjti.configure(settings) as first, sjti.configure(settings) as second:
        assert second.wait_ready(10)
        old = first.sign_in("jo")
        assert second.verify(old.token)["sub"] == "jo"  # jo's record is cached on `second`
        new = first.sign_in("jo")
        assert second.verify(new.token)["sid"] == new.sid  # no stale copy refuses it
        first.revoke_device("jo", old.sid, actor="jo", reason="lost")
        assert refused_within(second, old.token, 5)
        assert second.verify(new.token)["sub"] == "jo"
