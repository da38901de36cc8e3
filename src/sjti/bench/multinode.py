"""Revocation across nodes, measured three ways.

* :func:`measure_propagation`: three OS processes (:mod:`sjti.bench._node`), each with its
  own cache and Redis bus following the event log, sharing one PostgreSQL and one Redis.
  Revoke on one node, time until every other node refuses the old token.
* :func:`measure_acknowledged`: the same cluster; revoke on one node with ``wait="all"``
  and time the call, which returns once every live node has applied the event (its
  heartbeated watermark reached the event id), or at the timeout (an incomplete
  acknowledgement).
* :func:`measure_catchup`: one node, in this process, whose bus is down while revocation
  events commit; time until it is current again and has served its working set, when it
  replays the log after its watermark and when it clears its cache instead.

Used by ``sjti bench`` (the ``sjti.revoke_propagation_*``, ``sjti.revoke_ack_all_*`` and
``sjti.catchup_after_outage_*`` rows) and by the tests, which add a fault: Redis killed
and restarted mid-run.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import create_engine, event

from .. import BoundaryVerifier, ClaimsPolicy, Issuer, SigningKey, UserVerifier
from .._core.wrapping import Kek, KekRing
from ..cache import CachedKeys, KeyCache
from ..cache import _follow as follow
from ..errors import RevokedTokenError
from ..stores.sql import SqlSecretStore, upgrade

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..cache._bus import ThreadedBus

__all__ = [
    "AckResult",
    "CatchupResult",
    "CatchupTrial",
    "Node",
    "PropagationResult",
    "cluster",
    "measure_acknowledged",
    "measure_catchup",
    "measure_propagation",
    "percentile",
]

REGISTER_TIMEOUT_S: Final = 10.0  # for every node to appear in the node registry
_ISSUER: Final = "https://auth.sjti.test"
_AUDIENCE: Final = "https://api.sjti.test"
_MAX_OPS: Final = 100_000  # a catch-up that needs more plan steps than this is stuck
Mode = Literal["replay", "clear"]
_MODES: Final[tuple[Mode, ...]] = ("replay", "clear")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank on the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Node:
    """A node process and its line protocol (see :mod:`sjti.bench._node`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sjti.bench._node"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            bufsize=1,
        )

    def ask(self, command: str) -> str:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover - Popen always sets them
            raise RuntimeError("node pipes closed")
        stdin.write(command + "\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"node exited with {self._proc.poll()}")
        return answer.rstrip("\n")

    def close(self) -> None:
        if self._proc.poll() is None:
            with suppress(RuntimeError, OSError):
                self.ask("quit")
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()


def _wait_registered(nodes: Sequence[Node], timeout: float) -> None:
    """Until the node registry lists every node (each heartbeats once it is current)."""
    wanted = {node.ask("node") for node in nodes}
    deadline = time.monotonic() + timeout
    while not wanted <= set(json.loads(nodes[0].ask("live"))):
        if time.monotonic() >= deadline:
            raise RuntimeError("the nodes did not register (no heartbeat in the node registry)")
        time.sleep(0.02)


@contextmanager
def cluster(database_url: str, redis_url: str, *, nodes: int = 3) -> Iterator[list[Node]]:
    """Start ``nodes`` node processes sharing the database and Redis; stop them after.

    Yields once every node's bus is connected and every node is in the node registry
    (so an acknowledged revocation waits for all of them).
    """
    upgrade_engine = create_engine(database_url)
    try:
        upgrade(upgrade_engine)
    finally:
        upgrade_engine.dispose()
    env = {
        **os.environ,
        "SJTI_NODE_DATABASE_URL": database_url,
        "SJTI_NODE_REDIS_URL": redis_url,
        "SJTI_NODE_KEK": KekRing([Kek.generate("bench")]).to_config(),
        "SJTI_NODE_APP_SECRET": secrets.token_hex(32),
    }
    started = [Node(env) for _ in range(nodes)]
    try:
        for node in started:  # each answers once its bus is up
            node.ask("stats")
        _wait_registered(started, REGISTER_TIMEOUT_S)
        yield started
    finally:
        for node in started:
            node.close()


# ---------------------------------------------------------------------------------------
# propagation: revoke, then poll the other nodes until they refuse


@dataclass(frozen=True, slots=True)
class PropagationResult:
    latencies_ms: tuple[float, ...]  # per revocation: until the last other node refused
    accepted_after_window: int  # a node accepted a token it had refused before (must be 0)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)


def measure_propagation(
    nodes: Sequence[Node],
    *,
    revocations: int = 200,
    deadline_s: float = 5.0,
    between: Callable[[int], None] | None = None,
) -> PropagationResult:
    """Revoke ``revocations`` users on node 0; time until nodes 1.. refuse the old token.

    Every other node first verifies the token (so it is cached there). ``between(i)`` runs
    before revocation ``i`` (the tests kill and restart Redis there).
    """
    first, others = nodes[0], nodes[1:]
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    relapses = 0
    run = secrets.token_hex(3)
    for i in range(revocations):
        if between is not None:
            between(i)
        user = f"user-{run}-{i}"
        token = first.ask(f"issue {user}")
        for node in others:
            node.ask(f"check {token}")  # warm the cache (or read through if untrusted)
        answer = first.ask(f"revoke {user}")
        outcomes[answer] = outcomes.get(answer, 0) + 1
        returned = time.perf_counter()
        pending = list(others)
        last = returned
        while pending and time.perf_counter() - returned < deadline_s:
            for node in list(pending):
                if node.ask(f"check {token}") != "accepted":
                    pending.remove(node)
                    last = time.perf_counter()
        latencies.append((last - returned) * 1000 if not pending else deadline_s * 1000)
        # Once refused, always refused: check each node again.
        relapses += sum(node.ask(f"check {token}") == "accepted" for node in others)
    return PropagationResult(tuple(latencies), relapses, outcomes)


# ---------------------------------------------------------------------------------------
# acknowledged revocation: revoke(wait="all") returns once every live node applied it


@dataclass(frozen=True, slots=True)
class AckResult:
    latencies_ms: tuple[float, ...]  # the revoke call, timed inside the revoking node
    incomplete: int  # calls that returned at the timeout with a node pending (must be 0)
    accepted_after_ack: int  # a node accepted the token after a complete ack (must be 0)
    warm_refusals: int  # a node refused a valid token before its revocation (must be 0)
    live_nodes: int  # nodes in the registry when the measurement began
    acknowledged: tuple[int, ...]  # per revocation: how many nodes acknowledged

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)


def measure_acknowledged(
    nodes: Sequence[Node], *, revocations: int = 200, timeout_s: float = 2.0
) -> AckResult:
    """Revoke ``revocations`` users on node 0 with ``wait="all"``; time each call.

    Every other node first verifies the token (so it is cached there). After a complete
    acknowledgement every node, node 0 included, must refuse the token at once: that is
    what the acknowledgement promises.
    """
    first, others = nodes[0], nodes[1:]
    live = len(json.loads(first.ask("live")))
    latencies: list[float] = []
    acknowledged: list[int] = []
    incomplete = accepted = warm_refusals = 0
    run = secrets.token_hex(3)
    for i in range(revocations):
        user = f"ack-{run}-{i}"
        token = first.ask(f"issue {user}")
        warm_refusals += sum(node.ask(f"check {token}") != "accepted" for node in others)
        answer = json.loads(first.ask(f"revoke-ack {user} {timeout_s:g}"))
        if "error" in answer:  # the revocation itself failed: nobody can acknowledge it
            answer = {"ms": timeout_s * 1000, "acknowledged": 0, "complete": False}
        latencies.append(float(answer["ms"]))
        acknowledged.append(int(answer["acknowledged"]))
        if not answer["complete"]:
            incomplete += 1
            continue
        accepted += sum(node.ask(f"check {token}") == "accepted" for node in nodes)
    return AckResult(
        tuple(latencies), incomplete, accepted, warm_refusals, live, tuple(acknowledged)
    )


# ---------------------------------------------------------------------------------------
# catch-up after a bus outage: replay the log, or clear the cache


class _Stepper:
    """A bus's listen plan (:mod:`sjti.cache._follow`) run one operation at a time by the
    bus's own synchronous executor, as its thread runs it, so the caller decides when the
    link drops and when it comes back. Backoff sleeps are skipped."""

    def __init__(self, bus: ThreadedBus) -> None:
        self._bus = bus
        self._plan = bus.follower.run()
        self._op: follow.Op = next(self._plan)  # Connect

    def _step(self) -> follow.Op:
        op = self._op
        result = None if isinstance(op, follow.Sleep) else self._bus._execute(op)
        self._op = self._plan.send(result)
        return op

    def connect(self) -> None:
        """Connect, catch up from the log, until the plan declares the node current."""
        for _ in range(_MAX_OPS):
            if self._step() == follow.Connected(True):
                return
        raise RuntimeError("the bus did not become current")

    def drop(self) -> None:
        """The link fails (as the executor reports it): the cache is suspended, entries
        kept; stop before the plan reconnects."""
        self._op = self._plan.throw(ConnectionError("bench: bus outage"))
        for _ in range(_MAX_OPS):
            if isinstance(self._op, follow.Connect):
                return
            self._step()
        raise RuntimeError("the bus did not try to reconnect")

    def close(self) -> None:
        self._plan.close()
        self._bus._close_session()


@dataclass(frozen=True, slots=True)
class CatchupTrial:
    """One reconnection after the outage, then one request per working-set user."""

    mode: Mode
    catchup_ms: float  # reconnect until the node is current (cache trusted again)
    serve_ms: float  # then verify every working-set user's token once
    hits: int  # cache counters over the serving
    misses: int
    bypasses: int
    refused: frozenset[str]  # users whose token was refused as revoked
    replayed: int  # events applied from the log during the catch-up
    cleared: int  # times the catch-up cleared the cache

    @property
    def total_ms(self) -> float:
        return self.catchup_ms + self.serve_ms


@dataclass(frozen=True, slots=True)
class CatchupResult:
    database: str  # SQLAlchemy dialect name
    bus: str  # "redis" or "log-poll"
    users: int  # the working set
    events: int  # revocation events committed during the outage
    revoked: frozenset[str]  # the users those events revoked
    warm_refused: int  # working-set tokens refused before the outage (must be 0)
    outage_s: float  # how long the events took to commit
    trials: tuple[CatchupTrial, ...]

    def of(self, mode: Mode) -> tuple[CatchupTrial, ...]:
        return tuple(t for t in self.trials if t.mode == mode)

    def median_ms(self, mode: Mode, part: str = "total_ms") -> float:
        return statistics.median(float(getattr(t, part)) for t in self.of(mode))


def _writer_engine(url: str) -> Engine:
    """The engine that fills the database: on SQLite, without fsync (a scratch file)."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        def no_fsync(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.execute("PRAGMA synchronous=OFF")

        event.listen(engine, "connect", no_fsync)
    return engine


def _catchup_bus(cache: KeyCache, log: SqlSecretStore, redis_url: str | None) -> ThreadedBus:
    """The node's bus. Pings and polls are set far apart: they never run here (the plan is
    stepped only through reconnections), but the trust lease (two ping intervals) must
    outlast the serving of the whole working set."""
    if redis_url is None:
        from ..cache.poll_bus import LogPollBus

        return LogPollBus(cache, log=log, poll_interval=60.0)
    from ..cache.redis_bus import RedisBus

    channel = f"sjti:bench-catchup:{secrets.token_hex(4)}"
    return RedisBus(
        cache, redis_url, channel=channel, health_check_interval=60.0, log=log, poll_interval=60.0
    )


def _serve(tokens: Sequence[tuple[str, str]], verify: Callable[[str], object]) -> frozenset[str]:
    """Verify each user's token once; the users refused as revoked."""
    refused = []
    for user, token in tokens:
        try:
            verify(token)
        except RevokedTokenError:
            refused.append(user)
    return frozenset(refused)


def _trial(
    mode: Mode,
    node: _Stepper,
    bus: ThreadedBus,
    tokens: Sequence[tuple[str, str]],
    verify: Callable[[str], object],
) -> CatchupTrial:
    follower, cache = bus.follower, bus.cache
    replayed, cleared, before = follower.replayed, follower.cleared, cache.stats()
    started = time.perf_counter()
    node.connect()
    current = time.perf_counter()
    refused = _serve(tokens, verify)
    served = time.perf_counter()
    after = cache.stats()
    return CatchupTrial(
        mode=mode,
        catchup_ms=(current - started) * 1000,
        serve_ms=(served - current) * 1000,
        hits=after.hits - before.hits,
        misses=after.misses - before.misses,
        bypasses=after.bypasses - before.bypasses,
        refused=refused,
        replayed=follower.replayed - replayed,
        cleared=follower.cleared - cleared,
    )


def measure_catchup(
    database_url: str,
    redis_url: str | None = None,
    *,
    users: int = 10_000,
    events: int = 10_000,
    revoked_share: float = 0.01,
    trials: int = 3,
) -> CatchupResult:
    """A node with a warm cache of ``users`` users loses its bus while ``events``
    revocations commit (each revoking one user of a ``revoked_share`` of the working set,
    round robin); then, ``trials`` times each, alternating: it reconnects and

    * ``replay``: catches up from the log after its watermark (the watermark is rewound to
      where the outage began before each replay, so every replay applies the same events),
    * ``clear``: clears its cache instead (the first-generation bus; the plan's path for a
      first sync or a pruned gap),

    and then verifies one token of every working-set user through its cache, reading
    through to the store on a miss. The events are committed by a second store (another
    node) on the same database, so this node learns of them only from the log.
    """
    if users < 1 or events < 1 or trials < 1 or not 0 < revoked_share <= 1:
        raise ValueError("users, events and trials must be positive, revoked_share in (0, 1]")
    reader_engine = create_engine(database_url)
    writer_engine = _writer_engine(database_url)
    try:
        upgrade(writer_engine)
        ring = KekRing([Kek.generate("catchup")])
        writer = SqlSecretStore(writer_engine, ring)
        reader = SqlSecretStore(reader_engine, ring)
        signing = SigningKey.from_secret(secrets.token_bytes(32))
        issuer = Issuer(signing, issuer=_ISSUER, audience=_AUDIENCE, ttl=3600)
        run = secrets.token_hex(3)
        ids = [f"ws-{run}-{i}" for i in range(users)]
        tokens = [(user, issuer.issue(user, writer.ensure(user))) for user in ids]
        revoked = ids[:: max(1, round(1 / revoked_share))]
        verifier = UserVerifier(
            BoundaryVerifier(signing, ClaimsPolicy(issuer=_ISSUER, audience=_AUDIENCE))
        )
        # max_age far beyond the run: entries must not expire while the events commit
        # (expiry is not what is measured); room for the whole working set.
        cache = KeyCache(max_age=3600.0, max_size=max(100_000, 4 * users))
        keys = CachedKeys(reader, cache=cache)

        def verify(token: str) -> object:
            return verifier.verify_with(token, keys.get)

        bus = _catchup_bus(cache, reader, redis_url)
        node = _Stepper(bus)
        try:
            node.connect()  # first sync: clear, watermark = the log's newest id
            warm_refused = len(_serve(tokens, verify))  # every key now in the cache
            mark = bus.follower.watermark
            node.drop()
            started = time.perf_counter()
            for i in range(events):
                writer.revoke(revoked[i % len(revoked)], actor="sjti bench", reason="outage")
            outage_s = time.perf_counter() - started
            done: list[CatchupTrial] = []
            for _ in range(trials):
                for mode in _MODES:
                    if done:
                        node.drop()
                    bus.follower.watermark = mark if mode == "replay" else None
                    done.append(_trial(mode, node, bus, tokens, verify))
        finally:
            node.close()
            bus.close()
            with suppress(Exception):  # best effort, as the bus's own thread does
                reader.forget_node(bus.node_id)
        return CatchupResult(
            database=reader_engine.dialect.name,
            bus="log-poll" if redis_url is None else "redis",
            users=users,
            events=events,
            revoked=frozenset(revoked[: max(0, events)]),
            warm_refused=warm_refused,
            outage_s=outage_s,
            trials=tuple(done),
        )
    finally:
        reader_engine.dispose()
        writer_engine.dispose()
