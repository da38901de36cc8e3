"""Code run in child processes (spawned: importable, no fixtures, no shared state)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from sjti import KekRing
from sjti.stores.sql import AppUsersTable, Layout, OwnedTable, SqlSecretStore, upgrade


def warm() -> None:
    """Pool initializer: pay the import cost before the race starts."""


def _log(audit: str) -> dict[str, str]:
    """The audit, event and node table names (as SqlNames.log derives them)."""
    return {
        "audit_table": audit,
        "events_table": f"{audit}_events",
        "nodes_table": f"{audit}_nodes",
    }


def _layout(engine: sa.Engine, kind: str, table: str, audit: str) -> Layout:
    if kind == "app":
        return AppUsersTable(sa.Table(table, sa.MetaData(), autoload_with=engine), **_log(audit))
    return OwnedTable(table, **_log(audit))


def _wait_until(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def ensure_at(
    url: str, kind: str, table: str, audit: str, ring_config: str, user_id: str, start_at: float
) -> str:
    """Call ensure at a shared wall-clock instant; return the key (hex) this process got."""
    engine = sa.create_engine(url)
    try:
        store = SqlSecretStore(
            engine, KekRing.from_config(ring_config), _layout(engine, kind, table, audit)
        )
        _wait_until(start_at)
        return store.ensure(user_id).secret_bytes().hex()
    finally:
        engine.dispose()


def upgrade_at(url: str, table: str, audit: str, start_at: float) -> list[str]:
    engine = sa.create_engine(url)
    try:
        _wait_until(start_at)
        return upgrade(engine, OwnedTable(table, **_log(audit)))
    finally:
        engine.dispose()
