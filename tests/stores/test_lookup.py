"""The hot lookup (``load``): compiled once, run on the DBAPI connection, a few pooled
connections held for it; it must stay correct, bounded, observable and fail closed."""

from __future__ import annotations

import gc
import warnings

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from sjti import KekRing
from sjti.errors import BackendError
from sjti.stores.sql import SqlSecretStore

from ._harness import SqlNames, app_layout, drop_tables, owned_layout


def _store(engine: sa.Engine, names: SqlNames, ring: KekRing, layout: str) -> SqlSecretStore:
    if layout == "app":
        users, app = app_layout(engine, names)
        with engine.begin() as conn:
            conn.execute(users.insert().values(id=7))
        return SqlSecretStore(engine, ring, app)
    return SqlSecretStore(engine, ring, owned_layout(engine, names))


@pytest.mark.parametrize("layout", ["owned", "app"])
def test_load_reads_the_committed_key_after_each_revocation(
    engine: sa.Engine, names: SqlNames, ring: KekRing, layout: str
) -> None:
    """A held connection must never serve a stale key: each load sees the last commit."""
    store = _store(engine, names, ring, layout)
    store.ensure("7")
    keys = [store.load_secret("7")]
    for _ in range(3):
        store.revoke("7")
        keys.append(store.load_secret("7"))
    assert None not in keys
    assert len(set(keys)) == 4
    assert store.load("8") is None
    assert store.load("not-an-int" if layout == "app" else "") is None
    store.close()


def test_lookup_holds_pooled_connections_and_gives_them_back(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """The lane keeps its connection checked out between loads; close() returns it."""
    store = _store(engine, names, ring, "owned")
    store.ensure("u1")
    pool = engine.pool
    assert isinstance(pool, sa.QueuePool)
    store.load("u1")
    assert pool.checkedout() == 1
    store.load("u1")
    assert pool.checkedout() == 1  # reused, not a second one
    store.close()
    assert pool.checkedout() == 0
    assert store.load("u1") is not None  # takes one again
    store.close()


def test_lookup_leaves_writers_a_connection_with_a_pool_of_one(
    sql_url: str, names: SqlNames, ring: KekRing
) -> None:
    """With pool_size=1 (no overflow) holding the only connection would starve revoke."""
    engine = sa.create_engine(sql_url, pool_size=1, max_overflow=0, pool_timeout=2)
    store = None
    try:
        store = _store(engine, names, ring, "owned")
        store.ensure("u1")
        key = store.load_secret("u1")
        assert key is not None
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        store.revoke("u1")  # would time out if the lookup held the connection
        assert store.load_secret("u1") not in (key, None)
    finally:
        if store is not None:
            store.close()
        drop_tables(engine, names.all)
        engine.dispose()


def test_dispose_closes_held_connections_and_the_store_recovers(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """engine.dispose() with a lookup connection held: closed at once (no GC leak
    warning later), and the next load takes a connection from the new pool."""
    store = _store(engine, names, ring, "owned")
    store.ensure("u1")
    key = store.load_secret("u1")
    assert key is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.dispose()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert store.load_secret("u1") == key
    store.close()


def test_garbage_collected_store_returns_its_connections(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """A store dropped without close() must not leave a checked-out connection behind."""
    store = _store(engine, names, ring, "owned")
    store.ensure("u1")
    store.load("u1")
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    del store
    gc.collect()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_cursor_listeners_still_see_each_lookup(
    engine: sa.Engine, names: SqlNames, ring: KekRing
) -> None:
    """Tracing hooks on the engine (before_cursor_execute) keep seeing the hot SELECT."""
    store = _store(engine, names, ring, "owned")
    store.ensure("u1")
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert store.load_secret("u1") is not None
        assert store.load("nobody") is None
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(seen) == 2
    assert all(names.secrets in statement for statement in seen)
    store.close()


@pytest.mark.service
def test_a_killed_lookup_connection_fails_closed_then_recovers(
    postgres_url: str, names: SqlNames, ring: KekRing
) -> None:
    """The server drops the held connection: that load is a BackendError (never a key or
    None), and the next one works on a fresh connection."""
    engine = sa.create_engine(postgres_url)
    store = _store(engine, names, ring, "owned")
    try:
        store.ensure("u1")
        key = store.load_secret("u1")
        assert key is not None
        with engine.connect() as conn:
            pids = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND query LIKE :q"
                ),
                {"q": f"%{names.secrets}%"},
            ).scalars()
            killed = [
                conn.execute(sa.select(sa.func.pg_terminate_backend(p))).scalar() for p in pids
            ]
        assert killed
        assert all(killed)
        with pytest.raises(BackendError):
            store.load("u1")
        assert store.load_secret("u1") == key
    finally:
        store.close()
        drop_tables(engine, names.all)
        engine.dispose()


def test_unwrap_str_opens_exactly_what_unwrap_of_from_str_opens(ring: KekRing) -> None:
    """The hot read's one-pass open must accept and refuse exactly like the two steps."""
    from sjti import Kek, WrappedSecret
    from sjti.errors import UnwrapError

    text = ring.wrap("u1", bytes(range(32))).to_str()
    kid = ring.primary.kid
    other = KekRing([Kek.generate("other")]).wrap("u1", bytes(32)).to_str()
    head, _, tail = text.rpartition(".")
    cases: list[tuple[str, str, str | None]] = [
        ("u1", text, None),
        ("u1", text, kid),
        ("u1", text, "not-the-column"),  # the kek_id column disagrees with the text
        ("u2", text, None),  # another user's row
        ("", text, None),
        ("u1", f"{head}.{'A' if tail[0] != 'A' else 'B'}{tail[1:]}", None),  # one bit off
        ("u1", "v2" + text[2:], None),  # unknown version
        ("u1", other, None),  # a KEK the ring lacks
        ("u1", text + "AAAA", None),  # too long a blob
        ("u1", text.replace(".", "", 1), None),
        ("u1", "x" * 600, None),
    ]
    for user_id, stored, column in cases:
        try:
            expected: bytes | None = ring.unwrap(user_id, WrappedSecret.from_str(stored))
            if column is not None and column != WrappedSecret.from_str(stored).kek_id:
                expected = None
        except UnwrapError:
            expected = None
        if expected is None:
            with pytest.raises(UnwrapError):
                ring.unwrap_str(user_id, stored, kek_id=column)
        else:
            assert ring.unwrap_str(user_id, stored, kek_id=column) == expected
    assert ring.unwrap_str("u1", text) == bytes(range(32))


@pytest.mark.service
def test_a_forked_child_never_touches_the_parents_lookup_connection(
    postgres_url: str, names: SqlNames, ring: KekRing
) -> None:
    """After fork the child reads through a connection of its own and exits; the parent's
    held connection still works (the child neither used nor closed it)."""
    import os

    engine = sa.create_engine(postgres_url)
    store = _store(engine, names, ring, "owned")
    try:
        store.ensure("u1")
        key = store.load_secret("u1")
        assert key is not None
        pid = os.fork()
        if pid == 0:  # the child: its own connection, a clean exit without cleanup
            code = 0
            try:
                engine.dispose(close=False)
                code = 0 if store.load_secret("u1") == key else 1
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert store.load_secret("u1") == key  # the parent's connection survived
    finally:
        store.close()
        drop_tables(engine, names.all)
        engine.dispose()
