"""The bench rows that need a secret store or services.

* ``sjti.verify_full_cached.HS256``: the user key from a :class:`~sjti.cache.KeyCache` hit
  (``CachedKeys`` in front of the SQLite store, invalidated by the store's listener).
* ``sjti.verify_full_sqlite.HS256`` / ``sjti.verify_full_postgres.HS256``: a cache miss on
  every verification, i.e. one ``SELECT`` through :class:`~sjti.stores.sql.SqlSecretStore`
  on a SQLite file in a temporary directory / on a scratch PostgreSQL database.
* ``sjti.verify_full_postgres_async.HS256``: the same miss through
  :class:`~sjti.stores.sql_async.AsyncSqlSecretStore` (psycopg async), each call driven
  to completion on an event loop the bench keeps (``run_until_complete`` included).
* ``floor.sqlite_select_pk`` / ``floor.pg_select_pk``: the store's primary-key ``SELECT``
  on the same table through the raw driver (sqlite3, with its statement cache; psycopg in
  autocommit, prepared): what the miss path cannot beat. The targets compare each store
  miss's time above ``sjti.verify_full.HS256`` with its floor.
* ``sjti.revoke_propagation_p50_ms`` / ``_p99_ms``: three node processes sharing the scratch
  database and Redis (:mod:`sjti.bench.multinode`); measured once, after the timed loop.
* ``sjti.revoke_ack_all_p50_ms`` / ``_p99_ms`` / ``sjti.revoke_ack_all_incomplete``: on the
  same cluster, ``revoke(wait="all")`` timed until every live node acknowledged, and how
  many calls came back with a node still pending.
* ``sjti.catchup_after_outage_ms`` / ``_clear_ms``: one node in this process whose bus is
  down while revocations commit, current and serving its working set again by replaying
  the log / by clearing its cache (on the scratch database, else a SQLite file).

Every store row is checked like the others before it is timed: it must return the token's
claims, and refuse a forged token, the token of a revoked user (for the cache: a user who
was in the cache when revoked) and the token of a user the store lacks. The propagation
run is checked as it goes: every other node must accept each token before its revocation
and refuse it for good afterwards, every node must refuse it once the revocation is
acknowledged, and after an outage the node must refuse exactly the revoked users' tokens
and hit or miss its cache as the mode says, or the run stops with :class:`CaseError`.

PostgreSQL is only ever used through a scratch database (``CREATE DATABASE
sjti_bench_<hex>``, dropped at the end), so the bench never touches application data.
Missing extras or services that do not answer skip their rows with a note.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import secrets
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

from .. import BoundaryVerifier, Kek, KekRing, UserKey, UserVerifier
from ..cache import CachedKeys, KeyCache
from ..errors import RevokedTokenError, SjtiError
from ._cases import (
    EXTRA_CLAIMS,
    SUBJECT,
    Case,
    CaseError,
    Fixture,
    _check_issued,
    _forge,
    _oracle,
    _rejects,
    expect_claims,
)
from ._result import Measure

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..stores.sql import SqlSecretStore
    from .multinode import CatchupResult, Node

__all__ = [
    "ACK_INCOMPLETE",
    "ACK_P50",
    "ACK_P99",
    "CACHED",
    "CATCHUP",
    "CATCHUP_CLEAR",
    "DEFAULT_POSTGRES_URL",
    "DEFAULT_REDIS_URL",
    "PG_FLOOR",
    "POSTGRES",
    "POSTGRES_ASYNC",
    "POSTGRES_ENV",
    "PROPAGATION_P50",
    "PROPAGATION_P99",
    "REDIS_ENV",
    "SQLITE",
    "SQLITE_FLOOR",
    "Backends",
    "ClusterMeasures",
    "measure_outage",
    "measure_revocation",
    "open_backends",
    "redact",
]

DEFAULT_POSTGRES_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
POSTGRES_ENV: Final = "SJTI_BENCH_POSTGRES_URL"
REDIS_ENV: Final = "SJTI_BENCH_REDIS_URL"

CACHED: Final = "sjti.verify_full_cached.HS256"
SQLITE: Final = "sjti.verify_full_sqlite.HS256"
POSTGRES: Final = "sjti.verify_full_postgres.HS256"
POSTGRES_ASYNC: Final = "sjti.verify_full_postgres_async.HS256"
SQLITE_FLOOR: Final = "floor.sqlite_select_pk"
PG_FLOOR: Final = "floor.pg_select_pk"
# The store's hot statement on the owned table, as the raw driver runs it.
_FLOOR_SQL: Final = (
    "SELECT user_id, wrapped_secret, devices, kek_id FROM sjti_user_secrets WHERE user_id = {}"
)
PROPAGATION_P50: Final = "sjti.revoke_propagation_p50_ms"
PROPAGATION_P99: Final = "sjti.revoke_propagation_p99_ms"
ACK_P50: Final = "sjti.revoke_ack_all_p50_ms"
ACK_P99: Final = "sjti.revoke_ack_all_p99_ms"
ACK_INCOMPLETE: Final = "sjti.revoke_ack_all_incomplete"
ACK_TIMEOUT_S: Final = 2.0  # revoke(wait="all", timeout=...) in the acknowledged rows
CATCHUP: Final = "sjti.catchup_after_outage_ms"
CATCHUP_CLEAR: Final = "sjti.catchup_after_outage_clear_ms"
NODES: Final = 3
DEADLINE_S: Final = 5.0  # a node still accepting a revoked token after this: the run fails
_CONNECT_TIMEOUT_S: Final = 2


@dataclass(slots=True)
class Backends:
    """What :func:`open_backends` set up: the store cases, and where the cluster may run."""

    cases: list[Case] = field(default_factory=list)
    sql: bool = False  # the sql extra is installed (SQLite works)
    database_url: str | None = None  # the scratch PostgreSQL database (SQLAlchemy URL)
    redis_url: str | None = None  # a Redis that answered
    shown: dict[str, str | None] = field(default_factory=dict)  # URLs without passwords


# ---------------------------------------------------------------------------------------
# URLs


def _postgres_urls(url: str) -> tuple[str, str, str]:
    """The SQLAlchemy URL (psycopg driver), the libpq URL and the URL without password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy would pick psycopg2 for this
        parsed = parsed.set(drivername="postgresql+psycopg")
    libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return (
        parsed.render_as_string(hide_password=False),
        libpq,
        parsed.render_as_string(hide_password=True),
    )


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for notes, reports and JSON)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = parts.username or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------------
# the store cases


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A store holding the bench subject's key, its token, and tokens it must refuse."""

    token: str
    claims: dict[str, Any]
    refused: tuple[tuple[str, str], ...]


def _prepare(
    fx: Fixture, store: SqlSecretStore, warm: Sequence[Callable[[str], object]] = ()
) -> _Prepared:
    """Give the subject a key in ``store``; make a revoked user and an unknown one.

    Each ``warm`` lookup fetches both users first, so a cache in front of the store holds
    the revoked user's old key when the revocation happens (its listener must drop it).
    """
    token = fx.issuer.issue(SUBJECT, store.ensure(SUBJECT), claims=EXTRA_CLAIMS)
    header, claims = _oracle(token, fx.secret)
    problem = _check_issued(header, claims, fx.hs_key.kid)
    if problem is not None:
        raise CaseError(f"store token: {problem}")
    revoked_user, unknown_user = f"{SUBJECT}-revoked", f"{SUBJECT}-unknown"
    revoked = fx.issuer.issue(revoked_user, store.ensure(revoked_user), claims=EXTRA_CLAIMS)
    for lookup in warm:
        lookup(SUBJECT)
        lookup(revoked_user)
    store.revoke(revoked_user, actor="sjti bench", reason="bench precheck")
    unknown = fx.issuer.issue(unknown_user, UserKey.generate(), claims=EXTRA_CLAIMS)
    refused = (
        *fx.bad_tokens,
        ("a forged signature on the store user's token", _forge(token)),
        ("the token of a revoked user", revoked),
        ("the token of a user the store lacks", unknown),
    )
    return _Prepared(token, claims, refused)


def _store_lookup(store: SqlSecretStore) -> Callable[[str], UserKey]:
    """One ``SELECT`` per call; an unknown user is refused like a revoked one."""
    load = store.load

    def lookup(user_id: str) -> UserKey:
        key = load(user_id)
        if key is None:
            raise RevokedTokenError()
        return key

    return lookup


def _verify_case(
    name: str, fx: Fixture, prepared: _Prepared, lookup: Callable[[str], UserKey]
) -> tuple[Callable[[str], object], Case]:
    verifier = UserVerifier(BoundaryVerifier(fx.hs_key, fx.policy))
    verify = functools.partial(verifier.verify_with, lookup=lookup)
    return verify, _checked_case(name, prepared, verify)


def _checked_case(name: str, prepared: _Prepared, verify: Callable[[str], object]) -> Case:
    """Time ``verify`` on the prepared token; it must return its claims, refuse the rest."""
    return Case(
        name,
        "sjti",
        "verify",
        functools.partial(verify, prepared.token),
        expect_claims(prepared.claims),
        _rejects(verify, prepared.refused),
    )


def _store(engine: Engine, ring: KekRing | None = None) -> SqlSecretStore:
    from ..stores.sql import SqlSecretStore, upgrade

    upgrade(engine)
    return SqlSecretStore(engine, ring or KekRing([Kek.generate("bench")]))


def _sqlite_cases(fx: Fixture, stack: contextlib.ExitStack) -> list[Case]:
    """The cache hit and the SQLite miss, on one store in a temporary SQLite file."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="sjti-bench-"))
    engine = create_engine(f"sqlite:///{Path(directory) / 'bench.db'}")
    stack.callback(engine.dispose)
    try:
        store = _store(engine)
        cache = KeyCache(trusted=True)  # no bus: the store's listener invalidates it directly
        store.add_listener(cache.invalidate)
        cached = CachedKeys(store, cache=cache)
        prepared = _prepare(fx, store, warm=(cached.get,))
    except (SjtiError, SQLAlchemyError) as exc:
        raise CaseError(f"{SQLITE}: setting up the store failed: {_first_line(exc)}") from exc
    _, cached_case = _verify_case(CACHED, fx, prepared, cached.get)
    misses = cache.stats().misses
    claims_check = cached_case.check

    def from_the_cache(result: object) -> str | None:
        problem = claims_check(result)
        if problem is not None:
            return problem
        stats = cache.stats()
        if stats.misses != misses or stats.bypasses or SUBJECT not in cache:
            return "the user key did not come from the cache"
        return None

    cached_case = dataclasses.replace(cached_case, check=from_the_cache)
    _, sqlite_case = _verify_case(SQLITE, fx, prepared, _store_lookup(store))
    stack.callback(store.close)  # before engine.dispose (callbacks run last in, first out)
    return [cached_case, sqlite_case, _sqlite_floor(stack, Path(directory) / "bench.db")]


def _select_pk_check(result: object) -> str | None:
    """A floor row must return the subject's stored row (id, wrapped secret, devices, KEK
    id: the columns the store's lookup reads)."""
    if not isinstance(result, tuple) or len(result) != 4 or result[0] != SUBJECT:
        return "did not return the subject's row"
    if not isinstance(result[1], str) or not result[1].startswith("v1."):
        return "returned no wrapped secret"
    return None


def _sqlite_floor(stack: contextlib.ExitStack, path: Path) -> Case:
    """The PK SELECT through sqlite3 on its own connection to the same file."""
    import sqlite3

    connection = sqlite3.connect(path)
    stack.callback(connection.close)
    execute, statement = connection.execute, _FLOOR_SQL.format("?")

    def select_pk() -> object:
        return execute(statement, (SUBJECT,)).fetchone()

    return Case(SQLITE_FLOOR, "floor", "verify", select_pk, _select_pk_check)


def _drop_database(libpq_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(libpq_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        print(
            f"sjti bench: could not drop the scratch database {name}: {_first_line(exc)}",
            file=sys.stderr,
        )


def _postgres_scratch(
    stack: contextlib.ExitStack, server_url: str, notes: list[str]
) -> tuple[str, str] | None:
    """A fresh ``sjti_bench_<hex>`` database on the server (dropped when ``stack`` closes):
    its SQLAlchemy URL and the server URL to show; ``None`` (and a note) if PostgreSQL does
    not answer or refuses."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        notes.append(f"{POSTGRES} skipped: psycopg (the sql extra) is not installed")
        return None
    try:
        url, libpq, shown = _postgres_urls(server_url)
    except Exception as exc:  # a malformed URL: say so, keep benching the rest
        notes.append(f"{POSTGRES} skipped: bad PostgreSQL URL ({type(exc).__name__})")
        return None
    name = f"sjti_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        notes.append(f"{POSTGRES} skipped: PostgreSQL at {shown}: {_first_line(exc)}")
        return None
    stack.callback(_drop_database, libpq, name)
    return _with_database(url, name), shown


def _postgres_cases(fx: Fixture, stack: contextlib.ExitStack, database_url: str) -> list[Case]:
    """The PostgreSQL miss through the sync and the async store (same tables, same KEK
    ring), and the raw driver's floor."""
    import asyncio

    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.ext.asyncio import create_async_engine

    from ..stores.sql_async import AsyncSqlSecretStore

    engine = create_engine(database_url)
    stack.callback(engine.dispose)
    ring = KekRing([Kek.generate("bench")])
    try:
        store = _store(engine, ring)
        prepared = _prepare(fx, store)
    except (SjtiError, SQLAlchemyError) as exc:
        raise CaseError(f"{POSTGRES}: setting up the store failed: {_first_line(exc)}") from exc
    stack.callback(store.close)  # before engine.dispose (callbacks run last in, first out)
    sync_case = _verify_case(POSTGRES, fx, prepared, _store_lookup(store))[1]

    loop = asyncio.new_event_loop()
    stack.callback(loop.close)
    async_engine = create_async_engine(database_url)
    stack.callback(lambda: loop.run_until_complete(async_engine.dispose()))
    async_store = AsyncSqlSecretStore(async_engine, ring)

    async def lookup(user_id: str) -> UserKey:
        key = await async_store.load(user_id)
        if key is None:
            raise RevokedTokenError()
        return key

    verifier = UserVerifier(BoundaryVerifier(fx.hs_key, fx.policy))

    def verify(token: str) -> object:
        return loop.run_until_complete(verifier.averify_with(token, lookup))

    async_case = _checked_case(POSTGRES_ASYNC, prepared, verify)
    return [sync_case, async_case, _pg_floor(stack, database_url)]


def _pg_floor(stack: contextlib.ExitStack, database_url: str) -> Case:
    """The PK SELECT through psycopg: its own connection, autocommit, prepared."""
    import psycopg

    libpq = _postgres_urls(database_url)[1]
    connection = psycopg.connect(libpq, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
    stack.callback(connection.close)
    execute, statement = connection.execute, _FLOOR_SQL.format("%s")

    def select_pk() -> object:
        return execute(statement, (SUBJECT,), prepare=True).fetchone()

    return Case(PG_FLOOR, "floor", "verify", select_pk, _select_pk_check)


def _redis_answers(url: str, notes: list[str]) -> bool:
    try:
        import redis
    except ImportError:
        notes.append("revocation across nodes skipped: redis (the redis extra) is not installed")
        return False
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=_CONNECT_TIMEOUT_S, socket_connect_timeout=_CONNECT_TIMEOUT_S
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        notes.append(f"revocation across nodes skipped: Redis at {redact(url)}: {_first_line(exc)}")
        return False
    return True


def open_backends(
    fx: Fixture,
    stack: contextlib.ExitStack,
    *,
    postgres_url: str | None,
    redis_url: str | None,
    notes: list[str],
) -> Backends:
    """The store cases, in display order, and the services the cluster may use.

    ``postgres_url`` / ``redis_url`` ``None``: leave that service out (``--no-services``).
    Everything opened here is closed (and the scratch database dropped) with ``stack``.
    """
    backends = Backends(shown={"postgres": None, "redis": None})
    try:
        import sqlalchemy  # noqa: F401 - only asking whether the sql extra is there
    except ImportError:
        notes.append(
            f"{CACHED}, {SQLITE} and {POSTGRES} skipped: SQLAlchemy (the sql extra) "
            "is not installed"
        )
        return backends
    backends.sql = True
    backends.cases.extend(_sqlite_cases(fx, stack))
    if postgres_url is None:
        return backends
    scratch = _postgres_scratch(stack, postgres_url, notes)
    if scratch is None:
        if redis_url is not None:
            notes.append("revocation across nodes skipped: it needs PostgreSQL")
        return backends
    backends.database_url, backends.shown["postgres"] = scratch
    backends.cases.extend(_postgres_cases(fx, stack, backends.database_url))
    if redis_url is not None and _redis_answers(redis_url, notes):
        backends.redis_url = redis_url
        backends.shown["redis"] = redact(redis_url)
    return backends


# ---------------------------------------------------------------------------------------
# revocation across nodes


class _Watch:
    """Records what a node answers while :func:`measure_propagation` drives it.

    ``measure_propagation`` throws away the answer to the first ``check`` of each token
    (the cache warm-up): here it must be ``accepted``, or a node refusing everything
    would post a fast propagation time. ``last_check`` is the answer to the latest check,
    which after each revocation is the final "still refused?" check.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._seen: set[str] = set()
        self.warm_refusals: list[str] = []
        self.last_check = ""

    def ask(self, command: str) -> str:
        answer = self._node.ask(command)
        verb, _, argument = command.partition(" ")
        if verb == "check":
            self.last_check = answer
            if argument not in self._seen:
                self._seen.add(argument)
                if answer != "accepted":
                    self.warm_refusals.append(answer)
        return answer

    def close(self) -> None:
        self._node.close()


def _verdict(watches: Sequence[_Watch]) -> str | None:
    for n, watch in enumerate(watches, start=2):  # node 1 revokes
        if watch.warm_refusals:
            return (
                f"node {n} refused a valid token before its revocation ({watch.warm_refusals[0]})"
            )
        if watch.last_check == "accepted":
            return (
                f"node {n} still accepted a revoked token after its revocation "
                f"(waited up to {DEADLINE_S:g} s)"
            )
    return None


@dataclass(frozen=True, slots=True)
class ClusterMeasures:
    """What :func:`measure_revocation` measured on one cluster, and how."""

    measures: tuple[Measure, ...]
    propagation: dict[str, Any]
    acknowledgement: dict[str, Any]


def measure_revocation(
    database_url: str, redis_url: str, revocations: int
) -> ClusterMeasures | str:
    """Propagation (p50, p99) and acknowledged revocation (p50, p99, incomplete count) on
    one cluster of :data:`NODES` node processes, and how they were made.

    A cluster that does not start gives a note (a string) instead; a cluster that lets a
    revoked token through (after its revocation, or after a complete acknowledgement), or
    refuses valid ones, raises :class:`CaseError`.
    """
    from .multinode import cluster, measure_acknowledged, measure_propagation

    with contextlib.ExitStack() as running:
        try:
            nodes = running.enter_context(cluster(database_url, redis_url, nodes=NODES))
        except (RuntimeError, OSError, SjtiError) as exc:
            return f"revocation across nodes skipped: the nodes did not start: {_first_line(exc)}"
        watches = [_Watch(node) for node in nodes[1:]]
        # _Watch has the two methods measure_propagation uses (ask, close): duck-typed.
        watched = [nodes[0], *(cast("Node", watch) for watch in watches)]

        def guard(i: int) -> None:
            problem = _verdict(watches) if i else None
            if problem is not None:
                raise CaseError(f"revocation across nodes: {problem}")

        result = measure_propagation(
            watched, revocations=revocations, deadline_s=DEADLINE_S, between=guard
        )
        problem = _verdict(watches)
        if problem is None and result.accepted_after_window:
            problem = (
                f"{result.accepted_after_window} revoked tokens accepted again after a refusal"
            )
        if problem is None and max(result.latencies_ms) >= DEADLINE_S * 1000:
            problem = f"a node still accepted a revoked token {DEADLINE_S:g} s after its revocation"
        if problem is not None:
            raise CaseError(f"revocation across nodes: {problem}")
        acked = measure_acknowledged(nodes, revocations=revocations, timeout_s=ACK_TIMEOUT_S)
    if acked.warm_refusals:
        raise CaseError(
            f"acknowledged revocation: {acked.warm_refusals} valid tokens refused before "
            "their revocation"
        )
    if acked.accepted_after_ack:
        raise CaseError(
            f"acknowledged revocation: {acked.accepted_after_ack} revoked tokens accepted "
            "after every node had acknowledged the revocation"
        )
    what = f"revoke on node 1 until nodes 2-{NODES} refuse the old token"
    acking = f'revoke(wait="all") on node 1 until all {acked.live_nodes} live nodes acknowledged'

    measures = (
        Measure(PROPAGATION_P50, result.p50_ms, "ms", f"{what}, median"),
        Measure(PROPAGATION_P99, result.p99_ms, "ms", f"{what}, 99th percentile"),
        Measure(ACK_P50, acked.p50_ms, "ms", f"{acking}, median"),
        Measure(ACK_P99, acked.p99_ms, "ms", f"{acking}, 99th percentile"),
        Measure(
            ACK_INCOMPLETE,
            float(acked.incomplete),
            "acks",
            f"of those {len(acked.latencies_ms)} calls, how many came back with a node pending",
        ),
    )
    propagation: dict[str, Any] = {
        "nodes": NODES,
        "revocations": len(result.latencies_ms),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "max_ms": max(result.latencies_ms),
        "outcomes": dict(result.outcomes),
        "accepted_after_window": result.accepted_after_window,
    }
    acknowledgement: dict[str, Any] = {
        "nodes": NODES,
        "live_nodes": acked.live_nodes,
        "revocations": len(acked.latencies_ms),
        "timeout_s": ACK_TIMEOUT_S,
        "p50_ms": acked.p50_ms,
        "p99_ms": acked.p99_ms,
        "max_ms": max(acked.latencies_ms),
        "incomplete": acked.incomplete,
        "accepted_after_ack": acked.accepted_after_ack,
        "acknowledged_min": min(acked.acknowledged),
    }
    return ClusterMeasures(measures, propagation, acknowledgement)


# ---------------------------------------------------------------------------------------
# catch-up after a bus outage


def _catchup_problem(result: CatchupResult) -> str | None:
    """What makes the catch-up numbers meaningless, if anything."""
    if result.warm_refused:
        return f"{result.warm_refused} valid tokens refused before the outage"
    for trial in result.trials:
        if trial.refused != result.revoked:
            wrong = len(trial.refused ^ result.revoked)
            return f"after the {trial.mode}, {wrong} users were served the wrong verdict"
        if trial.bypasses:
            return f"the cache was not trusted while serving after the {trial.mode}"
    for trial in result.of("replay"):
        if trial.cleared or trial.replayed != result.events:
            return f"the replay applied {trial.replayed} of {result.events} events"
        if trial.misses != len(result.revoked):
            return f"the replay left {trial.misses} cache misses, not {len(result.revoked)}"
    for trial in result.of("clear"):
        if trial.cleared != 1 or trial.misses != result.users:
            return "the clear did not empty the cache"
    return None


def _catchup_database(
    database_url: str | None, stack: contextlib.ExitStack
) -> tuple[str, str | None]:
    """The scratch PostgreSQL database, or a SQLite file in a temporary directory."""
    if database_url is not None:
        return database_url, None
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="sjti-catchup-"))
    return f"sqlite:///{Path(directory) / 'catchup.db'}", "no PostgreSQL: on SQLite"


def measure_outage(
    database_url: str | None,
    redis_url: str | None,
    stack: contextlib.ExitStack,
    *,
    users: int,
    events: int,
    trials: int,
) -> tuple[tuple[Measure, ...], dict[str, Any]]:
    """The catch-up rows (replay, clear; median of ``trials`` each) and how they were made.

    On the scratch PostgreSQL database when there is one (else a SQLite file); on the
    Redis bus when Redis answered (else the log-polling bus). A run whose node serves a
    wrong verdict, or whose cache did not do what the mode says, raises :class:`CaseError`.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from .multinode import measure_catchup

    url, fallback = _catchup_database(database_url, stack)
    logger = logging.getLogger("sjti.cache")
    level = logger.level
    logger.setLevel(logging.ERROR)  # each simulated outage would log a warning
    try:
        result = measure_catchup(url, redis_url, users=users, events=events, trials=trials)
    except (SjtiError, SQLAlchemyError) as exc:
        raise CaseError(f"catch-up after an outage: {_first_line(exc)}") from exc
    finally:
        logger.setLevel(level)
    problem = _catchup_problem(result)
    if problem is not None:
        raise CaseError(f"catch-up after an outage: {problem}")
    replay, clear = result.median_ms("replay"), result.median_ms("clear")
    setting = f"after {events:,} events, until {users:,} cached users are served"
    section = "catch-up after a bus outage"
    measures = (
        Measure(CATCHUP, replay, "ms", f"{setting}: replay the log (median)", section),
        Measure(CATCHUP_CLEAR, clear, "ms", f"{setting}: clear the cache (median)", section),
    )
    details: dict[str, Any] = {
        "database": result.database,
        "bus": result.bus,
        "fallback": fallback,
        "users": result.users,
        "events": result.events,
        "revoked_users": len(result.revoked),
        "outage_s": result.outage_s,
        "trials": trials,
        **{
            mode: {
                "total_ms": result.median_ms(mode),
                "catchup_ms": result.median_ms(mode, "catchup_ms"),
                "serve_ms": result.median_ms(mode, "serve_ms"),
                "all_ms": [t.total_ms for t in result.of(mode)],
                "misses": result.of(mode)[0].misses,
            }
            for mode in ("replay", "clear")
        },
        "ratio": replay / clear,
    }
    return measures, details
