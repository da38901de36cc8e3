"""The one hot statement: a user's wrapped secret by primary key, at the driver's floor.

Every verification that misses the key cache runs this ``SELECT``. Through SQLAlchemy's
``Connection.execute`` it cost ~30x (SQLite) and ~6x (PostgreSQL) the same query through
the raw driver (docs/benchmark.md): per call a statement built, its cache key computed, a
result object, a pool checkout and check-in and, on PostgreSQL, a ``ROLLBACK`` round trip
for the transaction the read had opened. So this one statement is compiled **once per
store** with the engine's dialect (same text, paramstyle and type processing SQLAlchemy
would use, for either layout) and run on the DBAPI connection:

* **one round trip**: on PostgreSQL the connection is switched to autocommit while it
  serves lookups, so the read opens no transaction and its return needs no ``ROLLBACK``
  (a single ``SELECT`` reads one committed snapshot either way). psycopg prepares it
  server-side after a few executions on a connection (its ``prepare_threshold``, which
  the application may turn off for PgBouncer); sqlite3 keeps it in its statement cache.
* **no pool trip per call** (sync store): :class:`Lane` keeps a few pooled connections
  checked out for lookups only. It holds at most ``pool_size - 1`` (and at most
  :data:`LANE`), so writes always find a connection; with a pool that cannot share
  (``NullPool``, ``StaticPool``, ``SingletonThreadPool``) it holds none and checks out
  per call. A connection that fails is invalidated, never reused; the caller gets
  :class:`~sjti.errors.BackendError` (fail closed). Held connections go back to the pool
  on :meth:`Lane.close` or when the store is garbage collected.

The async store runs the same function on a pooled connection per call (SQLAlchemy's
async connections cannot be returned from a finaliser). An engine with cursor listeners
(``before_cursor_execute``: tracing, statement counters) gets the same text through
``Connection.exec_driver_sql`` instead, so the listeners still see every lookup.
"""

from __future__ import annotations

import collections
import contextlib
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine, Select, bindparam, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from ..errors import BackendError, ConfigurationError
from . import _statements as st
from ._plans import driver_error

__all__ = [
    "ID",
    "LANE",
    "Lane",
    "Lookup",
    "cause",
    "compile_lookup",
    "compile_statement",
    "fetch",
    "fetch_on",
]

LANE: Final = 4  # connections a sync store keeps for lookups, at most
ID: Final = "b_id"

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Lookup:
    """A compiled primary-key ``SELECT`` and how to feed it and read its row."""

    sql: str
    positional: bool
    bind: Processor
    results: tuple[Processor, ...]  # one per column: user_id, wrapped, devices[, kek_id]...
    autocommit: bool  # PostgreSQL: serve lookups outside any transaction
    plain: bool  # no column needs converting (text columns): the driver's row is the row
    names: tuple[str, ...] = (ID,)  # its parameters in order: the id, then any other

    def params(
        self, id_value: object, other: object = None
    ) -> Sequence[object] | dict[str, object]:
        """The id (through its bind processor) and, for a two-parameter lookup, ``other``."""
        value = id_value if self.bind is None else self.bind(id_value)
        if self.positional:
            return (value,) if len(self.names) == 1 else (value, other)
        return {ID: value} if len(self.names) == 1 else {ID: value, self.names[1]: other}

    def row(self, raw: Sequence[Any] | None) -> Sequence[Any] | None:
        if raw is None or self.plain:
            return raw
        return tuple(v if p is None else p(v) for p, v in zip(self.results, raw, strict=True))


def compile_lookup(ctx: st.Context, dialect: Dialect) -> Lookup:
    """:func:`~sjti.stores._statements.select_secret`, compiled for ``dialect`` once."""
    statement = st.select_secret(ctx, bindparam(ID, type_=ctx.target.id.type))
    return compile_statement(ctx, dialect, statement, (ID,))


def compile_statement(
    ctx: st.Context, dialect: Dialect, statement: Select[Any], names: tuple[str, ...]
) -> Lookup:
    """``statement`` (binding ``names``, the user id first) compiled for ``dialect``."""
    compiled = statement.compile(dialect=dialect)
    positional = compiled.positiontup is not None
    if (
        not 1 <= len(names) <= 2
        or set(compiled.params) != set(names)
        or (positional and tuple(compiled.positiontup or ()) != names)
    ):
        raise ConfigurationError("a lookup binds exactly its parameters, each once")
    results = tuple(
        c.type.dialect_impl(dialect).result_processor(dialect, None)
        for c in statement.selected_columns
    )
    t = ctx.target
    bind = t.id.type.dialect_impl(dialect).bind_processor(dialect)
    postgres = ctx.dialect == "postgresql"
    return Lookup(compiled.string, positional, bind, results, postgres, not any(results), names)


def fetch(
    dbapi_connection: Any, lookup: Lookup, id_value: object, other: object = None
) -> Sequence[Any] | None:
    """Run the lookup on a DBAPI connection (sync or SQLAlchemy's async adapter)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(lookup.sql, lookup.params(id_value, other))
        raw = cursor.fetchone()
    finally:
        cursor.close()
    return raw if raw is None or lookup.plain else lookup.row(raw)


def _limit(engine: Engine) -> int:
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return 0
    return max(0, min(LANE, pool.size() - 1))


def cause(exc: BaseException) -> BaseException | None:
    """What to chain to BackendError: the driver's error, never SQLAlchemy's wrapper
    (whose message lists the statement's parameters)."""
    return driver_error(exc) if isinstance(exc, DBAPIError) else exc


def fetch_on(
    connection: Connection, lookup: Lookup, id_value: object, other: object = None
) -> Sequence[Any] | None:
    """:func:`fetch` on a checked-out :class:`Connection` for one call (the async store,
    through ``run_sync``): in autocommit while it runs, then back as the pool gave it."""
    dbapi_connection = connection.connection.dbapi_connection
    if not lookup.autocommit:
        return fetch(dbapi_connection, lookup, id_value, other)
    dbapi_connection.autocommit = True  # type: ignore[union-attr]
    try:
        return fetch(dbapi_connection, lookup, id_value, other)
    finally:
        dbapi_connection.autocommit = False  # type: ignore[union-attr]


class Lane:
    """Pooled connections kept checked out for the sync store's lookups."""

    def __init__(self, engine: Engine, lookup: Lookup) -> None:
        self._engine = engine
        self._lookup = lookup
        self._limit = _limit(engine)
        self._idle: collections.deque[PoolProxiedConnection] = collections.deque()
        _LANES.add(self)  # a forked child forgets them (see _forget_in_child)
        idle = self._idle

        def disposed(_: Engine) -> None:
            # engine.dispose() closes the pool's idle connections: close ours too (they
            # belong to the old pool, which would otherwise leave them to the GC).
            _invalidate_all(idle)

        event.listen(engine, "engine_disposed", disposed)
        # When the store goes away, held connections go back to the pool (never to the
        # GC, which SQLAlchemy and the drivers report as a leak).
        self._finalizer = weakref.finalize(self, _retire, engine, disposed, idle, lookup.autocommit)

    def fetch(self, id_value: object, other: object = None) -> Sequence[Any] | None:
        """The row for ``id_value`` (``None``: no such row); BackendError on failure."""
        dispatch = self._engine.dispatch
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            return self._observed(id_value, other)
        idle = self._idle
        try:
            connection = idle.pop()
        except IndexError:
            connection = self._checkout()
        try:
            row = fetch(connection.dbapi_connection, self._lookup, id_value, other)
        except Exception as exc:  # any driver failure: drop the connection, fail closed
            connection.invalidate()
            raise BackendError("secret store unavailable") from cause(exc)
        if len(idle) < self._limit:
            idle.append(connection)
        else:
            _release(connection, self._lookup.autocommit)
        return row

    def _observed(self, id_value: object, other: object) -> Sequence[Any] | None:
        """The same text through :meth:`Connection.exec_driver_sql`, so cursor listeners
        (tracing, statement counters) see it; still no compilation per call."""
        lookup = self._lookup
        try:
            with self._engine.connect() as conn:
                raw = conn.exec_driver_sql(lookup.sql, lookup.params(id_value, other)).fetchone()
        except (DBAPIError, PoolTimeoutError) as exc:
            raise BackendError("secret store unavailable") from cause(exc)
        return lookup.row(raw)

    def close(self) -> None:
        """Return every held connection to the pool (the lane refills on demand)."""
        _close_all(self._idle, self._lookup.autocommit)

    def forget(self) -> None:
        """Stop using the held connections without closing them (a forked child's copy:
        they stay referenced, so neither this process nor the GC ever touches sockets
        that belong to the parent)."""
        _ABANDONED.extend(self._idle)
        self._idle.clear()

    def _checkout(self) -> PoolProxiedConnection:
        """A connection from the pool, ready for lookups (autocommit on PostgreSQL)."""
        try:
            connection = self._engine.raw_connection()
        except Exception as exc:  # pool timeout, or the driver's own connect error
            raise BackendError("secret store unavailable") from cause(exc)
        if self._lookup.autocommit:
            try:
                connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            except Exception as exc:
                connection.invalidate()
                raise BackendError("secret store unavailable") from cause(exc)
        return connection


def _release(connection: PoolProxiedConnection, autocommit: bool) -> None:
    """Back to the pool as the pool gave it (transactions on, for everyone else)."""
    try:
        if autocommit:
            connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]
        connection.close()
    except Exception:  # a dead connection: the pool replaces it
        connection.invalidate()


_LANES: weakref.WeakSet[Lane] = weakref.WeakSet()
_ABANDONED: list[PoolProxiedConnection] = []  # a forked child's copies of its parent's


def _forget_in_child() -> None:
    """A forked child must not use, nor close, its parent's sockets: drop them unseen."""
    for lane in list(_LANES):
        lane.forget()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_in_child)


def _retire(
    engine: Engine,
    disposed: Callable[[Engine], None],
    idle: collections.deque[PoolProxiedConnection],
    autocommit: bool,
) -> None:
    with contextlib.suppress(Exception):  # at interpreter exit the registry may be gone
        event.remove(engine, "engine_disposed", disposed)
    _close_all(idle, autocommit)


def _invalidate_all(idle: collections.deque[PoolProxiedConnection]) -> None:
    while idle:
        try:
            connection = idle.pop()
        except IndexError:  # another thread emptied it
            return
        with contextlib.suppress(Exception):
            connection.invalidate()


def _close_all(idle: collections.deque[PoolProxiedConnection], autocommit: bool) -> None:
    while idle:
        try:
            connection = idle.pop()
        except IndexError:  # another thread emptied it
            return
        _release(connection, autocommit)
