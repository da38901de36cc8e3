"""Bytes per user on disk, for the scale rows (docs/scale.md): seeded tables, measured.

Two layouts, each with no device list and with :data:`DEVICES` devices per user:

* ``owned``: sjti's own table (``OwnedTable``), ids 36-character UUID strings, made by
  :func:`~sjti.stores.sql.upgrade` with its indexes (primary key, ``kek_id``,
  ``rotated_at``);
* ``app``: the secret columns in an application's users table (``AppUsersTable``;
  ``id BIGINT`` primary key, a ``tenant`` column with an index on ``(tenant, id)`` as in
  the bulk bench). What sjti costs there is the table's size minus the same table
  without the secret columns (``app_base``), measured beside it.

Rows are written through the raw driver (COPY on PostgreSQL) in the form the store writes
them, and a real store then reads a few back, so a seeding mistake cannot post a size.
PostgreSQL sizes come from ``pg_relation_size`` / ``pg_total_relation_size`` after
``VACUUM ANALYZE`` (default fillfactor); SQLite's from the ``dbstat`` table.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .. import Kek, KekRing
from .._core.binding import UserKey, new_device_id
from ..stores._devices import column_text
from .bulk import app_users_table

__all__ = ["DEVICES", "TableSize", "drop", "measure_disk", "owned_layout", "seed_owned"]

DEVICES: Final = 3  # "a few devices per user"
_CHUNK: Final = 10_000
_EPOCH: Final = datetime(2020, 1, 1, tzinfo=UTC)
_LOGS: Final = {
    "audit_table": "scale_audit",
    "events_table": "scale_events",
    "nodes_table": "scale_nodes",
}


@dataclass(frozen=True, slots=True)
class TableSize:
    """One seeded table: bytes in all, in its heap (+ TOAST), and per index."""

    table: str
    users: int
    total: int
    heap: int
    indexes: dict[str, int] = field(default_factory=dict)

    @property
    def index_total(self) -> int:
        return sum(self.indexes.values())


def owned_layout(name: str) -> Any:
    from ..stores.layouts import OwnedTable

    return OwnedTable(name=name, **_LOGS)


def _copy(engine: Any, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert ``rows`` through the raw driver: COPY on PostgreSQL, executemany on SQLite
    (``statement`` is ``"<table> (<columns>)"``)."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            if isinstance(driver, sqlite3.Connection):
                marks = ", ".join("?" * len(chunk[0]))
                sqlite_rows = [tuple(map(_sqlite_value, row)) for row in chunk]
                driver.executemany(f"INSERT INTO {statement} VALUES ({marks})", sqlite_rows)  # noqa: S608 - constant
            else:
                with driver.cursor() as cursor, cursor.copy(f"COPY {statement} FROM STDIN") as cp:
                    for row in chunk:
                        cp.write_row(row)
            driver.commit()
    finally:
        raw.close()


def _sqlite_value(value: object) -> object:
    """A datetime as SQLAlchemy stores it in SQLite (naive UTC text)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _rotated_at(n: int) -> datetime:
    """One second apart: real users' rotation times differ (an index of equal values
    would be deduplicated to almost nothing by PostgreSQL)."""
    return _EPOCH + timedelta(seconds=n)


def _devices(count: int) -> str | None:
    return column_text([new_device_id() for _ in range(count)]) if count else None


def seed_owned(engine: Any, ring: KekRing, name: str, ids: Sequence[str], devices: int) -> None:
    """``ids`` in sjti's own table ``name`` (made by upgrade), each with a fresh key."""
    from ..stores.sql import upgrade

    upgrade(engine, owned_layout(name))
    kek = ring.primary.kid
    texts = ring.wrap_texts(list(ids))
    rows = [
        (i, t, kek, 1, _rotated_at(n), _devices(devices))
        for n, (i, t) in enumerate(zip(ids, texts, strict=True))
    ]
    _copy(engine, f"{name} (user_id, wrapped_secret, kek_id, version, rotated_at, devices)", rows)


def _seed_app(engine: Any, ring: KekRing, name: str, users: int, devices: int | None) -> Any:
    """``users`` rows (ids 1..users) in an app users table; ``devices=None``: the table
    without sjti's columns."""
    import sqlalchemy as sa

    from ..stores.layouts import AppUsersTable
    from ..stores.sql import upgrade

    metadata = sa.MetaData()
    table = app_users_table(metadata, name, secrets_too=devices is not None)
    metadata.create_all(engine)
    ids = range(1, users + 1)
    if devices is None:
        _copy(engine, f"{name} (id, tenant)", [(i, f"t{i % 1000}") for i in ids])
        return None
    layout = AppUsersTable(table, **_LOGS)
    upgrade(engine, layout)
    texts = ring.wrap_texts([str(i) for i in ids])
    rows = [
        (i, f"t{i % 1000}", t, 1, _rotated_at(i), _devices(devices))
        for i, t in zip(ids, texts, strict=True)
    ]
    columns = "id, tenant, token_secret, token_version, token_rotated_at, token_devices"
    _copy(engine, f"{name} ({columns})", rows)
    return layout


def _check_readable(
    engine: Any, ring: KekRing, layout: Any, ids: Sequence[str], devices: int
) -> None:
    """A real store reads the seeded rows back: the key opens, the devices are listed."""
    from ..stores.sql import SqlSecretStore

    store = SqlSecretStore(engine, ring, layout)
    try:
        for user_id in ids:
            record = store.load_secret(user_id)
            if record is None:
                raise RuntimeError(f"disk: the store cannot read seeded user {user_id}")
            key = UserKey.from_record(record)
            listed = None if key.devices is None else len(key.devices)
            if listed != (devices or None):
                raise RuntimeError(f"disk: user {user_id} has {listed} devices, not {devices}")
    finally:
        store.close()


def _sizes(engine: Any, table: str, users: int) -> TableSize:
    """The table's bytes: PostgreSQL's size functions, or SQLite's dbstat."""
    import sqlalchemy as sa

    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
            total, heap = conn.execute(
                sa.text(
                    "SELECT pg_total_relation_size(c.oid), pg_total_relation_size(c.oid)"
                    " - pg_indexes_size(c.oid) FROM pg_class c WHERE c.relname = :t"
                ),
                {"t": table},
            ).one()
            indexes = conn.execute(
                sa.text(
                    "SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x"
                    " JOIN pg_class i ON i.oid = x.indexrelid"
                    " JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = :t"
                ),
                {"t": table},
            ).all()
        return TableSize(table, users, int(total), int(heap), {n: int(b) for n, b in indexes})
    with engine.connect() as conn:
        names = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
            {"t": table},
        ).scalars()
        sizes = dict(
            conn.execute(sa.text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
        )
    indexes = {n: int(sizes[n]) for n in names}
    heap = int(sizes[table])
    return TableSize(table, users, heap + sum(indexes.values()), heap, indexes)


def measure_disk(
    url: str, users: int, progress: Callable[[str], None] = lambda _: None
) -> dict[str, TableSize]:
    """Seed and size ``owned_<d>``, ``app_<d>`` (d = 0 and :data:`DEVICES` devices) and
    ``app_base`` on the database at ``url`` (its ``scale_*`` tables are dropped after)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    ring = KekRing([Kek.generate("scale1")])
    made: list[str] = []
    out: dict[str, TableSize] = {}
    try:
        uuids = [str(uuid.UUID(bytes=secrets.token_bytes(16))) for _ in range(users)]
        sample = [str(u) for u in (1, 2, users)]
        for devices in (0, DEVICES):
            name = f"scale_owned_{devices}"
            made.append(name)
            seed_owned(engine, ring, name, uuids, devices)
            _check_readable(engine, ring, owned_layout(name), uuids[:3], devices)
            out[f"owned_{devices}"] = _sizes(engine, name, users)
            name = f"scale_app_{devices}"
            made.append(name)
            layout = _seed_app(engine, ring, name, users, devices)
            _check_readable(engine, ring, layout, sample, devices)
            out[f"app_{devices}"] = _sizes(engine, name, users)
            progress(f"{engine.dialect.name}: sized {users:,} users with {devices} devices")
        made.append("scale_app_base")
        _seed_app(engine, ring, "scale_app_base", users, None)
        out["app_base"] = _sizes(engine, "scale_app_base", users)
    finally:
        drop(engine, made)
        engine.dispose()
    return out


def drop(engine: Any, tables: Sequence[str]) -> None:
    """Drop ``tables`` and the scale log tables, and forget their schema versions (the
    database may be one the bench keeps using)."""
    import sqlalchemy as sa

    from ..stores._schema import version_table

    versions = version_table(sa.MetaData())
    scopes = [f"secrets:{name}" for name in tables]
    scopes += [f"{kind}:{_LOGS[f'{kind}_table']}" for kind in ("audit", "events", "nodes")]
    with engine.begin() as conn:
        for name in (*tables, *_LOGS.values()):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        if sa.inspect(conn).has_table(versions.name):
            conn.execute(versions.delete().where(versions.c.scope.in_(scopes)))
