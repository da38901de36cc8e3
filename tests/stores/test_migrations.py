"""The migration runner: idempotent, atomic, and safe when processes start together."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sjti import KekRing
from sjti.stores import migrations
from sjti.stores.sql import (
    AppUsersTable,
    OwnedTable,
    SqlSecretStore,
    add_secret_columns,
    schema_versions,
    secret_columns,
    upgrade,
)
from sjti.stores.sql_async import add_secret_columns_async, upgrade_async

from ._harness import SqlNames


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_upgrade_creates_the_tables_once(engine: sa.Engine, names: SqlNames) -> None:
    """Running upgrade at every start-up must be safe: the second run does nothing."""
    layout = OwnedTable(names.secrets, **names.log)
    first = upgrade(engine, layout)
    second = upgrade(engine, layout)
    assert first == [
        f"audit:{names.audit} v1",
        f"events:{names.events} v1",
        f"nodes:{names.nodes} v1",
        f"secrets:{names.secrets} v1",
        f"secrets:{names.secrets} v2",
    ]
    assert second == []
    versions = schema_versions(engine)
    assert versions[f"secrets:{names.secrets}"] == 2
    assert versions[f"audit:{names.audit}"] == 1
    assert versions[f"events:{names.events}"] == 1
    assert _columns(engine, names.events) == {
        "id", "at", "kind", "count", "audit_id", "users", "published",
    }  # fmt: skip
    assert _columns(engine, names.secrets) == {
        "user_id", "wrapped_secret", "kek_id", "version", "rotated_at", "devices",
    }  # fmt: skip
    assert _columns(engine, names.audit) == {
        "id", "at", "actor", "reason", "kind", "count", "detail",
    }  # fmt: skip


@pytest.mark.anyio
async def test_upgrade_async_is_idempotent_too(sql_url: str, names: SqlNames) -> None:
    """The async entry point runs the same migrations through run_sync."""
    engine = create_async_engine(sql_url.replace("sqlite://", "sqlite+aiosqlite://"))
    layout = OwnedTable(names.secrets, **names.log)
    try:
        assert len(await upgrade_async(engine, layout)) == 5
        assert await upgrade_async(engine, layout) == []
    finally:
        async with engine.begin() as conn:
            for name in names.all:
                await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        await engine.dispose()


def test_app_layout_upgrade_adds_only_missing_columns(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """The blog's ALTER TABLE, done for the app: existing users keep their rows, get no key."""
    secret, *_ = secret_columns()
    sa.Table(names.users, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.Text), secret).create(engine)  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            sa.table(names.users, sa.column("id"), sa.column("name")).insert(),
            [{"id": 1, "name": "ann"}],
        )
    users = sa.Table(names.users, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.Text), *secret_columns())  # fmt: skip
    layout = AppUsersTable(users, **names.log)
    assert upgrade(engine, layout) == [
        f"audit:{names.audit} v1",
        f"events:{names.events} v1",
        f"nodes:{names.nodes} v1",
        f"{names.users}.token_version",
        f"{names.users}.token_rotated_at",
        f"{names.users}.token_devices",
    ]
    assert upgrade(engine, layout) == []
    assert add_secret_columns(engine, layout) == []
    with engine.connect() as conn:
        row = conn.execute(sa.select(users)).mappings().one()
    assert (row["name"], row["token_secret"], row["token_version"]) == ("ann", None, 0)
    store = SqlSecretStore(engine, ring, layout)
    store.ensure("1")
    assert store.revoke("1").count == 1


@pytest.mark.anyio
async def test_add_secret_columns_async(sql_url: str, names: SqlNames) -> None:
    """The column helper has an async twin with the same result."""
    sync_engine = sa.create_engine(sql_url)
    sa.Table(names.users, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)).create(
        sync_engine
    )
    users = sa.Table(names.users, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     *secret_columns())  # fmt: skip
    engine = create_async_engine(sql_url.replace("sqlite://", "sqlite+aiosqlite://"))
    try:
        added = await add_secret_columns_async(engine, AppUsersTable(users))
        assert len(added) == 4
        assert await add_secret_columns_async(engine, AppUsersTable(users)) == []
    finally:
        await engine.dispose()
        with sync_engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE "{names.users}"'))
        sync_engine.dispose()


def test_racing_upgrades_apply_each_migration_once(sql_url: str, names: SqlNames) -> None:
    """Two app instances starting together: one migrates, the other waits and finds it done."""
    layout = OwnedTable(names.secrets, **names.log)
    engines = [sa.create_engine(sql_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            results.append(upgrade(engine, layout))
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert sorted(len(applied) for applied in results) == [0, 5]
    cleanup = sa.create_engine(sql_url)
    assert schema_versions(cleanup)[f"secrets:{names.secrets}"] == 2
    with cleanup.begin() as conn:
        for name in (names.secrets, names.audit):
            conn.execute(sa.text(f'DROP TABLE "{name}"'))
    cleanup.dispose()


def test_a_failing_migration_leaves_the_previous_version(
    engine: sa.Engine, names: SqlNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Atomic upgrades: a crash halfway leaves neither a half-made table nor a bumped version."""

    def broken(conn: sa.Connection, name: str) -> None:
        raise RuntimeError("migration bug")

    monkeypatch.setattr(migrations, "SECRETS_MIGRATIONS", (*migrations.SECRETS_MIGRATIONS, broken))
    layout = OwnedTable(names.secrets, **names.log)
    with pytest.raises(RuntimeError):
        upgrade(engine, layout)
    assert not sa.inspect(engine).has_table(names.secrets)
    assert f"secrets:{names.secrets}" not in schema_versions(engine)


def test_a_new_migration_runs_on_an_existing_database(
    engine: sa.Engine, names: SqlNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appending to the list upgrades old databases by exactly the new step."""
    layout = OwnedTable(names.secrets, **names.log)
    upgrade(engine, layout)

    def add_note(conn: sa.Connection, name: str) -> None:
        conn.execute(sa.text(f'ALTER TABLE "{name}" ADD COLUMN note TEXT'))

    monkeypatch.setattr(
        migrations, "SECRETS_MIGRATIONS", (*migrations.SECRETS_MIGRATIONS, add_note)
    )
    assert upgrade(engine, layout) == [f"secrets:{names.secrets} v3"]
    assert "note" in _columns(engine, names.secrets)
    assert schema_versions(engine)[f"secrets:{names.secrets}"] == 3


def test_a_v1_owned_table_gains_devices_and_keeps_its_rows(
    engine: sa.Engine, names: SqlNames, ring: KekRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database made before devices existed: v2 adds the column, keys stay, and the
    users' records say "devices not tracked" (NULL) until a device signs in."""
    layout = OwnedTable(names.secrets, **names.log)
    monkeypatch.setattr(migrations, "SECRETS_MIGRATIONS", migrations.SECRETS_MIGRATIONS[:1])
    upgrade(engine, layout)
    assert "devices" not in _columns(engine, names.secrets)
    with engine.begin() as conn:  # a v1 row, written as v1 code wrote it
        conn.execute(
            sa.text(
                f'INSERT INTO "{names.secrets}" (user_id, wrapped_secret, kek_id, version, '  # noqa: S608 - a test table name
                "rotated_at) VALUES (:u, :w, :k, 1, :t)"
            ),
            {"u": "old", "w": ring.wrap("old", bytes(32)).to_str(), "k": ring.primary.kid,
             "t": "2026-01-01 00:00:00"},
        )  # fmt: skip
    monkeypatch.undo()
    assert upgrade(engine, layout) == [f"secrets:{names.secrets} v2"]
    key = SqlSecretStore(engine, ring, layout).load("old")
    assert key is not None
    assert (key.secret_bytes(), key.devices) == (bytes(32), None)
