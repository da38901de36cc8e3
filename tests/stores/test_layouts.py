"""SQL-only behaviour: the two layouts, the row-in-hand helper, configuration errors."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from sjti import (
    BackendError,
    ConfigurationError,
    Issuer,
    Kek,
    KekRing,
    RevokedTokenError,
    UnwrapError,
    UserVerifier,
)
from sjti.stores import Cohort, CohortError, UnknownUserError
from sjti.stores.sql import (
    AppUsersTable,
    CohortColumns,
    OwnedTable,
    SqlSecretStore,
    user_key_from_row,
)
from sjti.stores.sql_async import AsyncSqlSecretStore

from ._harness import SqlNames, app_layout, owned_layout


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    """Every statement the engine sends to the database while the block runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


# -- the app-table layout: verification rides on the row the app already loaded ----------


def test_user_key_from_row_verifies_with_zero_queries(
    engine: sa.Engine,
    names: SqlNames,
    ring: KekRing,
    issuer: Issuer,
    verifier: UserVerifier,
) -> None:
    """The blog's claim: with the secret in the users row, the user layer costs no query."""
    users, layout = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(users.insert().values(id=7, tenant="acme"))
    store = SqlSecretStore(engine, ring, layout)
    token = issuer.issue("7", store.ensure("7"))
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == 7)).mappings().one()  # the app's
        with counting(engine) as statements:
            key = user_key_from_row(row, ring, layout)
            assert key is not None
            claims = verifier.verify(token, key)
    assert claims["sub"] == "7"
    assert statements == []
    with counting(engine) as statements:  # the counter does see a store lookup
        store.load("7")
    assert len(statements) == 1


def test_user_key_from_row_follows_revocation(
    engine: sa.Engine,
    names: SqlNames,
    ring: KekRing,
    issuer: Issuer,
    verifier: UserVerifier,
) -> None:
    """A row loaded after revoke carries the new key, so the old token fails the user layer."""
    users, layout = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(users.insert().values(id=7))
    store = SqlSecretStore(engine, ring, layout)
    token = issuer.issue("7", store.ensure("7"))
    store.revoke("7")
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == 7)).mappings().one()
    key = user_key_from_row(row, ring, layout)
    assert key is not None
    with pytest.raises(RevokedTokenError):
        verifier.verify(token, key)


def test_user_key_from_row_without_secret_is_none_and_tampered_fails_closed(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """A user with no token yet has no key; an edited secret column never opens."""
    users, layout = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": 1}, {"id": 2}])
    SqlSecretStore(engine, ring, layout).ensure("2")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.id)).mappings().all()
    assert user_key_from_row(rows[0], ring, layout) is None
    moved = {**rows[1], "id": 1}  # user 2's secret pasted onto user 1
    with pytest.raises(UnwrapError):
        user_key_from_row(moved, ring, layout)


def test_app_layout_ensure_never_creates_users(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """Users belong to the app: a token for a stranger must not conjure a users row."""
    users, layout = app_layout(engine, names)
    store = SqlSecretStore(engine, ring, layout)
    with pytest.raises(UnknownUserError):
        store.ensure("42")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one() == 0


def test_non_canonical_integer_ids_are_unknown(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """ "007" is not user 7: its key is bound to the text "7", and the id must not alias."""
    users, layout = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(users.insert().values(id=7))
    store = SqlSecretStore(engine, ring, layout)
    store.ensure("7")
    for alias in ("007", "+7", "7.0", " 7", "seven"):
        assert store.load(alias) is None
        with pytest.raises(UnknownUserError):
            store.ensure(alias)
        with pytest.raises(UnknownUserError):
            store.revoke(alias)
    assert store.revoke_many(["007", "7"]).user_ids == ("7",)


def test_app_layout_with_text_ids(engine: sa.Engine, names: SqlNames, ring: KekRing) -> None:
    """UUID or e-mail primary keys work as well as integers."""
    users, layout = app_layout(engine, names, id_type=sa.Text)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": "alice@example.com"}, {"id": "bob"}])
    store = SqlSecretStore(engine, ring, layout)
    key = store.ensure("alice@example.com")
    assert store.revoke_many(["alice@example.com", "bob", "carol"]).count == 1
    after = store.load_secret("alice@example.com")
    assert after is not None
    assert after != key.secret_bytes()


def test_owned_layout_cohort_joins_the_app_table(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """Tenant lives in the app's table; the owned table joins it on the id (int vs text)."""
    users, _ = app_layout(engine, names)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": 1, "tenant": "a"}, {"id": 2, "tenant": "b"}])
    store = SqlSecretStore(
        engine,
        ring,
        owned_layout(engine, names),
        cohort_columns=CohortColumns(users, tenant="tenant"),
    )
    for user_id in ("1", "2", "3"):  # 3 has a secret but no users row: never selected
        store.ensure(user_id)
    assert store.revoke_cohort(Cohort(tenant="a")).user_ids == ("1",)


# -- configuration errors -----------------------------------------------------------------


def test_cohort_fields_without_a_column_are_refused(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """An unmapped criterion must fail loudly, never be dropped (which would widen it)."""
    users, _ = app_layout(engine, names)
    bare = SqlSecretStore(engine, ring, owned_layout(engine, names))
    mapped = SqlSecretStore(
        engine,
        ring,
        OwnedTable(names.secrets, **names.log),
        cohort_columns=CohortColumns(users, tenant="tenant"),
    )
    bare.ensure("1")
    for store, cohort in [
        (bare, Cohort(tenant="acme")),
        (bare, Cohort(user_ids=frozenset({"1"}), role="admin")),
        (mapped, Cohort(tenant="acme", equals={"plan": "free"})),
        (mapped, Cohort(last_login_before=datetime(2030, 1, 1))),  # naive: ambiguous
    ]:
        with pytest.raises(CohortError) as caught:
            store.revoke_cohort(cohort)
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, ConfigurationError)
    assert bare.audit_log() == []


def test_layouts_refuse_columns_that_do_not_exist() -> None:
    """A typo in a column name is caught when the store is configured, not mid-incident."""
    users = sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(ConfigurationError):
        AppUsersTable(users)  # no token_secret column declared
    with pytest.raises(ConfigurationError):
        CohortColumns(users, tenant="tenant")
    with pytest.raises(ConfigurationError):
        CohortColumns(users, extra={"plan": "plan"})
    with pytest.raises(ConfigurationError):
        CohortColumns(users, id_column="user_id")
    with pytest.raises(ConfigurationError):
        OwnedTable("users; DROP TABLE users")


def test_notify_channel_needs_postgresql(tmp_path: Path, ring: KekRing) -> None:
    """SQLite has no NOTIFY: asking for it must not silently disable the announcement."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigurationError):
        SqlSecretStore(engine, ring, notify_channel="sjti_revocations")
    engine.dispose()


# -- KEKs ---------------------------------------------------------------------------------


def test_kek_rotation_logs_nobody_out_and_new_keys_use_the_primary(
    engine: sa.Engine, names: SqlNames
) -> None:
    """A new primary KEK still opens old secrets; every rotation wraps under the primary."""
    old, new = Kek.generate("old"), Kek.generate("new")
    layout = owned_layout(engine, names)
    before = SqlSecretStore(engine, KekRing([old]), layout).ensure("u1")
    store = SqlSecretStore(engine, KekRing([new, old]), layout)
    loaded = store.load("u1")
    assert loaded is not None
    assert loaded.secret_bytes() == before.secret_bytes()
    store.revoke("u1")
    secrets = sa.table(names.secrets, sa.column("wrapped_secret"), sa.column("kek_id"))
    with engine.connect() as conn:
        text, kek_id = conn.execute(sa.select(secrets.c.wrapped_secret, secrets.c.kek_id)).one()
    assert (text.split(".")[1], kek_id) == ("new", "new")
    with pytest.raises(UnwrapError):
        SqlSecretStore(engine, KekRing([old]), layout).load("u1")


def test_kek_id_column_must_match_the_wrapped_secret(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """A hand-edited kek_id column is tampering too: fail closed."""
    layout = owned_layout(engine, names)
    store = SqlSecretStore(engine, ring, layout)
    store.ensure("u1")
    secrets = sa.table(names.secrets, sa.column("kek_id"))
    with engine.begin() as conn:
        conn.execute(sa.update(secrets).values(kek_id="other"))
    with pytest.raises(UnwrapError):
        store.load("u1")


# -- failures of the database itself -------------------------------------------------------


@pytest.mark.anyio
async def test_database_failure_is_a_backend_error(tmp_path: Path, ring: KekRing) -> None:
    """An unreachable store maps to BackendError (503, fail closed), sync and async."""
    path = tmp_path / "missing-dir" / "x.db"
    sync_engine = sa.create_engine(f"sqlite:///{path}")
    with pytest.raises(BackendError):
        SqlSecretStore(sync_engine, ring).load("u1")
    sync_engine.dispose()
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    with pytest.raises(BackendError):
        await AsyncSqlSecretStore(async_engine, ring).load("u1")
    await async_engine.dispose()
    # The failed connect leaves an aiosqlite worker thread whose connection object is
    # collected later: collect it while this test's event loop still runs, or the thread
    # answers a closed loop in whatever test comes next.
    gc.collect()
    await asyncio.sleep(0.05)
