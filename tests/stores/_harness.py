"""One contract suite, many stores: a harness per backend that sets up users, reads what
was committed through an independent path, and tampers with stored secrets."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sjti import KekRing, WrappedSecret
from sjti.stores import (
    AsyncMemorySecretStore,
    AsyncSecretStore,
    MemorySecretStore,
)
from sjti.stores.memory import SyncStoreAsAsync
from sjti.stores.sql import (
    AppUsersTable,
    CohortColumns,
    Layout,
    OwnedTable,
    SqlSecretStore,
    secret_columns,
    upgrade,
)
from sjti.stores.sql_async import AsyncSqlSecretStore, upgrade_async

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    """A store clock the test moves by hand (aware UTC)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# A sync store behind the async interface, so one suite covers sync and async.
AsAsync = SyncStoreAsAsync


class Harness(Protocol):
    store: AsyncSecretStore
    clock: Clock
    ring: KekRing

    def add_user(self, user_id: str, **attributes: Any) -> None: ...

    def peek(self, user_id: str) -> bytes | None:
        """The committed secret, read without the store under test."""

    def version(self, user_id: str) -> int: ...

    def tamper(self, user_id: str, how: str, other: str = "") -> None:
        """Corrupt the stored secret: "flip" a bit, copy "other"'s, or "garbage"."""

    async def close(self) -> None: ...


def _flip(text: str) -> str:
    """One base64url character changed near the end: the GCM tag no longer matches."""
    position = len(text) - 5
    replacement = "A" if text[position] != "A" else "B"
    return text[:position] + replacement + text[position + 1 :]


class MemoryHarness:
    def __init__(self, ring: KekRing, clock: Clock, *, use_async: bool) -> None:
        self.ring, self.clock = ring, clock
        if use_async:
            async_store = AsyncMemorySecretStore(ring, clock=clock)
            self.memory = async_store.sync
            self.store: AsyncSecretStore = async_store
        else:
            self.memory = MemorySecretStore(ring, clock=clock)
            self.store = AsAsync(self.memory)

    def add_user(self, user_id: str, **attributes: Any) -> None:
        self.memory.add_user(user_id, **{k: v for k, v in attributes.items() if v is not None})

    def peek(self, user_id: str) -> bytes | None:
        return self.memory.load_secret(user_id)

    def version(self, user_id: str) -> int:
        user = self.memory.get_user(user_id)
        return user.version if user is not None else 0

    def tamper(self, user_id: str, how: str, other: str = "") -> None:
        user = self.memory.get_user(user_id)
        assert user is not None
        assert user.wrapped is not None
        if how == "flip":
            user.wrapped = WrappedSecret.from_str(_flip(user.wrapped.to_str()))
        elif how == "other":
            source = self.memory.get_user(other)
            assert source is not None
            user.wrapped = source.wrapped
        else:
            user.wrapped = WrappedSecret(kek_id=user.wrapped.kek_id, blob=b"garbage")

    async def close(self) -> None:
        return None


def users_table(metadata: sa.MetaData, name: str, *, with_secret: bool) -> sa.Table:
    """The application's users table; the app layout declares the three secret columns."""
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.Text),
        sa.Column("role", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("last_login_at", sa.DateTime(timezone=True)),
        sa.Column("plan", sa.Text),
    ]
    if with_secret:
        columns.extend(secret_columns())
    return sa.Table(name, metadata, *columns)


def cohort_columns_for(users: sa.Table) -> CohortColumns:
    return CohortColumns(
        users,
        tenant="tenant",
        role="role",
        created_at="created_at",
        last_login_at="last_login_at",
        extra={"plan": "plan"},
    )


@dataclass
class SqlNames:
    users: str
    secrets: str
    audit: str

    @classmethod
    def unique(cls) -> SqlNames:
        sfx = secrets.token_hex(4)
        return cls(f"users_{sfx}", f"sjti_secrets_{sfx}", f"sjti_audit_{sfx}")

    @property
    def events(self) -> str:
        return f"{self.audit}_events"

    @property
    def nodes(self) -> str:
        return f"{self.audit}_nodes"

    @property
    def log(self) -> dict[str, str]:
        """The layout keywords naming this test's audit, event and node tables."""
        return {"audit_table": self.audit, "events_table": self.events, "nodes_table": self.nodes}

    @property
    def all(self) -> list[str]:
        return [self.users, self.secrets, self.audit, self.events, self.nodes]


class SqlHarness:
    """A fresh set of tables (unique names) in a SQLite file or the session PostgreSQL."""

    def __init__(
        self, url: str, layout_kind: str, ring: KekRing, clock: Clock, *, use_async: bool
    ) -> None:
        self.ring, self.clock = ring, clock
        self.url, self.use_async = url, use_async
        self.names = SqlNames.unique()
        self.engine = sa.create_engine(url)
        # The app's table exists before sjti arrives (without the secret columns).
        users_table(sa.MetaData(), self.names.users, with_secret=False).create(self.engine)
        self.users = users_table(sa.MetaData(), self.names.users, with_secret=layout_kind == "app")
        self.layout: Layout = (
            AppUsersTable(self.users, **self.names.log)
            if layout_kind == "app"
            else OwnedTable(self.names.secrets, **self.names.log)
        )
        self.cohort_columns = cohort_columns_for(self.users)
        self.async_engine: AsyncEngine | None = None

    async def start(self) -> SqlHarness:
        if self.use_async:
            self.async_engine = create_async_engine(
                self.url.replace("sqlite://", "sqlite+aiosqlite://")
            )
            await upgrade_async(self.async_engine, self.layout)
            self.store: AsyncSecretStore = AsyncSqlSecretStore(
                self.async_engine,
                self.ring,
                self.layout,
                cohort_columns=self.cohort_columns,
                clock=self.clock,
            )
        else:
            upgrade(self.engine, self.layout)
            self.store = AsAsync(
                SqlSecretStore(
                    self.engine,
                    self.ring,
                    self.layout,
                    cohort_columns=self.cohort_columns,
                    clock=self.clock,
                )
            )
        return self

    # -- raw access, independent of the store under test --------------------------------

    def _secret_table(
        self,
    ) -> tuple[sa.TableClause, sa.ColumnClause[Any], sa.ColumnClause[Any], sa.ColumnClause[Any]]:
        if isinstance(self.layout, AppUsersTable):
            app = self.users.c
            return self.users, app.id, app.token_secret, app.token_version
        table = sa.table(
            self.names.secrets,
            sa.column("user_id", sa.Text),
            sa.column("wrapped_secret", sa.Text),
            sa.column("version", sa.Integer),
        )
        c = table.c
        return table, c.user_id, c.wrapped_secret, c.version

    def _id(self, user_id: str) -> object:
        return int(user_id) if isinstance(self.layout, AppUsersTable) else user_id

    def wrapped(self, user_id: str) -> str | None:
        _, id_col, secret_col, _ = self._secret_table()
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(secret_col).where(id_col == self._id(user_id))
            ).scalar_one_or_none()
        return value if isinstance(value, str) else None

    def set_wrapped(self, user_id: str, text: str) -> None:
        table, id_col, secret_col, _ = self._secret_table()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(table).where(id_col == self._id(user_id)).values({secret_col: text})
            )

    def add_user(self, user_id: str, **attributes: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.users).values(id=int(user_id), **attributes))

    def peek(self, user_id: str) -> bytes | None:
        text = self.wrapped(user_id)
        if text is None:
            return None
        return self.ring.unwrap(user_id, WrappedSecret.from_str(text))

    def version(self, user_id: str) -> int:
        _, id_col, _, version_col = self._secret_table()
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(version_col).where(id_col == self._id(user_id))
            ).scalar_one_or_none()
        return int(value or 0)

    def tamper(self, user_id: str, how: str, other: str = "") -> None:
        text = self.wrapped(user_id)
        assert text is not None
        if how == "flip":
            self.set_wrapped(user_id, _flip(text))
        elif how == "other":
            source = self.wrapped(other)
            assert source is not None
            self.set_wrapped(user_id, source)
        else:
            self.set_wrapped(user_id, "not-a-wrapped-secret")

    async def close(self) -> None:
        if self.async_engine is not None:
            await self.async_engine.dispose()
        drop_tables(self.engine, self.names.all)
        self.engine.dispose()


def drop_tables(engine: sa.Engine, names: Iterable[str]) -> None:
    """Per-test cleanup in the shared PostgreSQL database (SQLite files just go away)."""
    if engine.dialect.name != "postgresql":
        return
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")


def app_layout(
    engine: sa.Engine, names: SqlNames, *, id_type: type[sa.types.TypeEngine[Any]] = sa.Integer
) -> tuple[sa.Table, AppUsersTable]:
    """An existing users table, then sjti's upgrade adds the secret columns to it."""
    plain = sa.Table(names.users, sa.MetaData(), sa.Column("id", id_type, primary_key=True),
                     sa.Column("tenant", sa.Text))  # fmt: skip
    plain.create(engine)
    users = sa.Table(names.users, sa.MetaData(), sa.Column("id", id_type, primary_key=True),
                     sa.Column("tenant", sa.Text), *secret_columns())  # fmt: skip
    layout = AppUsersTable(users, **names.log)
    upgrade(engine, layout)
    return users, layout


def owned_layout(engine: sa.Engine, names: SqlNames) -> OwnedTable:
    layout = OwnedTable(names.secrets, **names.log)
    upgrade(engine, layout)
    return layout
