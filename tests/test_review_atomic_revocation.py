"""Security review of the atomic-revocation rebuild: attacks on the event log, the listen
plan, the node registry, the grants and the relay, each forced deterministically.

The tests under an ``R<n>`` heading proved a finding (they failed on the code as
reviewed, commit 366de8b) and pass since it was fixed; the others are attacks the code
withstood, kept because nothing else covers them.

The promise under attack: once a revocation has returned, no token it revoked is accepted,
on the revoking node at once, on the other nodes once they applied its event (bounded by
the poll interval); ``wait="all"`` makes the caller wait for every live node.

R2-R4 concern nodes that verify through ``CachedKeys`` and a bus following the event log
(the library wiring, the multinode bench's nodes). Since 0e70756 the reference service
verifies from the user row it loads, so its own acceptance no longer depends on the bus;
its ``wait``/``acknowledged_by`` answer still comes from the same registry.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import HTTPException, Response

from sjti import Kek, KekRing
from sjti._core.invalidation import encode_event
from sjti.cache import KeyCache
from sjti.cache import _follow as follow
from sjti.cache.poll_bus import LogPollBus
from sjti.cache.redis_bus import RedisBus
from sjti.errors import TokenError
from sjti.server.auth import Principal, verify_access_token
from sjti.server.models import NewUser
from sjti.server.routes import auth, me, oauth
from sjti.server.services import Services
from sjti.server.settings import Settings
from sjti.stores._ops import Fetch
from sjti.stores._revocation import utc_now
from sjti.stores.sql import OwnedTable, SqlSecretStore, upgrade

from .server.test_races import Pause, client_request
from .services import RedisProcess

RING = KekRing([Kek.generate("review")])
PASSWORD = "correct horse battery"


# -- helpers ---------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def fresh_layout() -> OwnedTable:
    """Table names of our own: the PostgreSQL test database is shared by the session."""
    sfx = secrets.token_hex(4)
    return OwnedTable(
        f"rv_secrets_{sfx}",
        audit_table=f"rv_audit_{sfx}",
        events_table=f"rv_events_{sfx}",
        nodes_table=f"rv_nodes_{sfx}",
    )


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, OwnedTable]]:
    """An engine and a layout whose tables exist, on SQLite and on PostgreSQL."""
    layout = fresh_layout()
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path}/review.db")
    else:
        request.applymarker(pytest.mark.service)
        engine = sa.create_engine(request.getfixturevalue("postgres_url"))
    upgrade(engine, layout)
    yield engine, layout
    engine.dispose()


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[tuple[sa.Engine, OwnedTable]]:
    """PostgreSQL only (row locks that a SQLite BEGIN IMMEDIATE would serialise away)."""
    request.applymarker(pytest.mark.service)
    layout = fresh_layout()
    engine = sa.create_engine(request.getfixturevalue("postgres_url"))
    upgrade(engine, layout)
    yield engine, layout
    engine.dispose()


class LogWorld:
    """Executes the listen plan's operations against a REAL store; a fake clock; an inbox."""

    def __init__(self, store: SqlSecretStore, node_id: str = "review-node") -> None:
        self.store = store
        self.node_id = node_id
        self.now = 1000.0
        self.inbox: list[str] = []
        self.connected = False
        self.fail_next_receive: Exception | None = None

    def clock(self) -> float:
        return self.now

    def answer(self, op: follow.Op) -> Any:
        match op:
            case follow.Latest():
                return self.store.latest_event_id()
            case follow.ReadLog(after):
                return self.store.events_after(after)
            case follow.Heartbeat(watermark):
                self.store.heartbeat(self.node_id, watermark)
            case follow.Receive(timeout):
                if self.fail_next_receive is not None:
                    exc, self.fail_next_receive = self.fail_next_receive, None
                    raise exc
                self.now += max(timeout, 0.01)
                payloads, self.inbox = self.inbox, []
                return payloads, True
            case follow.Ping():
                return True
            case follow.Sleep(seconds):
                self.now += seconds
            case follow.Connected(value):
                self.connected = value
        return None


class Node:
    """One node's cache and listen plan, driven op by op against the real event log."""

    def __init__(self, store: SqlSecretStore) -> None:
        self.world = LogWorld(store)
        self.cache = KeyCache(clock=self.world.clock)
        self.follower = follow.Follower(
            self.cache,
            has_log=True,
            health_check_interval=1.0,
            poll_interval=1.0,
            backoff=lambda failures: 0.01,
            clock=self.world.clock,
            on_state=lambda state: None,
        )
        self.plan = self.follower.run()
        self.op: follow.Op = next(self.plan)

    def until(self, done: Callable[[], bool], limit: int = 2000) -> None:
        for _ in range(limit):
            if done():
                return
            try:
                result = self.world.answer(self.op)
            except Exception as exc:  # the plan decides (fail closed)
                self.op = self.plan.throw(exc)
            else:
                self.op = self.plan.send(result)
        raise AssertionError("the plan never got there")

    def key(self, user_id: str) -> bytes | None:
        return self.cache.get_or_load(user_id, self.world.store.load_secret)


# -- attack on the hint fast path (fixed by e1df9d6 while this review ran) ------------------


@pytest.mark.service
def test_foreign_deployment_hint_on_shared_redis_never_skips_a_real_revocation(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    """Two deployments (two databases) on one Redis server, each in its own Redis database
    number, both on the default channel: Redis pub/sub ignores the database number, so
    deployment B's hint ``{"v":2,"event":1,"users":["bob"]}`` reaches deployment A's node
    while A's log is still empty. Before e1df9d6 the node applied "watermark + 1" from the
    message alone, then dropped A's real event 1 (alice) as already applied, acknowledged
    it, and served alice's revoked key until ``max_age``. Now only the log moves the
    watermark: the foreign hint costs one log read, and alice is refused."""
    base = own_redis.url.rsplit("/", 1)[0]
    url_a, url_b = f"{base}/1", f"{base}/2"
    poll = 2.0

    def deployment(name: str) -> sa.Engine:
        engine = sa.create_engine(f"sqlite:///{tmp_path}/{name}.db")
        upgrade(engine)
        return engine

    engine_a, engine_b = deployment("a"), deployment("b")
    victim_store = SqlSecretStore(engine_a, RING)  # node A1: follows A's log, revokes nothing
    revoker_store = SqlSecretStore(engine_a, RING)  # node A2: revokes (relays its events)
    store_b = SqlSecretStore(engine_b, RING)  # deployment B, elsewhere
    old_alice = revoker_store.ensure("alice").secret_bytes()
    store_b.ensure("bob")

    revoker = KeyCache()
    revoker_bus = RedisBus(revoker, url_a, log=revoker_store, poll_interval=poll)
    other = KeyCache()
    other_bus = RedisBus(other, url_b, log=store_b, poll_interval=poll)
    victim = KeyCache()
    victim_bus = RedisBus(victim, url_a, log=victim_store, poll_interval=poll)
    revoker_store.add_listener(revoker.invalidate)
    revoker_store.add_event_listener(revoker_bus.relay)
    store_b.add_event_listener(other_bus.relay)
    buses = (other_bus, revoker_bus, victim_bus)
    try:
        for bus in buses:
            bus.start()
            assert bus.wait_connected(10)
        connected_at = time.monotonic()  # the victim's first poll comes `poll` s later
        assert victim.get_or_load("alice", victim_store.load_secret) == old_alice  # cached

        store_b.revoke("bob", actor="deployment-b")  # B's event 1, on the shared channel
        assert wait_until(lambda: other_bus.watermark == 1, 2)
        time.sleep(0.2)  # the victim has handled B's hint by now
        assert victim_bus.watermark == 0  # not moved by a message

        result = revoker_store.revoke("alice", actor="admin", wait="all", timeout=3)
        assert result.event_id == 1
        assert time.monotonic() - connected_at < poll  # the hint did it, not a poll
        ack = result.acknowledgement
        assert ack is not None
        assert ack.complete
        assert victim_bus.node_id in ack.acknowledged
        assert victim.get_or_load("alice", victim_store.load_secret) != old_alice
    finally:
        for bus in buses:
            bus.close()
        engine_a.dispose()
        engine_b.dispose()


# -- R2: liveness is judged with each host's wall clock ---------------------------------------


def test_wait_all_ignores_a_connected_node_whose_clock_runs_behind(
    db: tuple[sa.Engine, OwnedTable],
) -> None:
    """``seen_at`` is the heartbeating host's clock, ``live_nodes`` compares it with the
    revoking host's clock. A node whose clock is 10 s slow (a VM after a pause, a host
    without NTP) is never "live": ``wait="all"`` answers *complete* at once, naming no
    node, while that node is connected, trusts its cache and serves the revoked key."""
    engine, layout = db
    revoker = SqlSecretStore(engine, RING, layout)
    skewed = SqlSecretStore(engine, RING, layout, clock=lambda: utc_now() - timedelta(seconds=10))
    old = revoker.ensure("alice").secret_bytes()
    cache = KeyCache()
    bus = LogPollBus(cache, log=skewed, poll_interval=5.0).start()
    try:
        assert bus.wait_connected(10)
        assert cache.get_or_load("alice", skewed.load_secret) == old
        assert cache.trusted

        result = revoker.revoke("alice", actor="admin", wait="all", timeout=2)
        ack = result.acknowledgement
        assert ack is not None
        served = cache.get_or_load("alice", skewed.load_secret)
        # Either the node was waited for (named), or it had really applied the event.
        assert bus.node_id in ack.acknowledged + ack.pending, (
            f"wait='all' answered complete={ack.complete} without the connected node"
        )
        assert not (ack.complete and served == old)
    finally:
        bus.close()


# -- R3: NODE_TTL is shorter than the poll interval the service allows ------------------------


def test_wait_all_ignores_a_node_polling_slower_than_the_node_ttl(
    tmp_path: Path,
) -> None:
    """``SJTI_POLL_INTERVAL`` may be up to 60 s, a node heartbeats only when it polls or
    applies a hint, and ``live_nodes`` keeps a node for NODE_TTL = 5 s. A node polling
    every 10 s (``SJTI_CACHE_WITHOUT_BUS=poll``, or any bus whose hint was lost) is
    "dead" half of the time: ``wait="all"`` then answers complete without it."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/ttl.db")
    upgrade(engine)
    store = SqlSecretStore(engine, RING)
    old = store.ensure("alice").secret_bytes()
    cache = KeyCache()
    bus = LogPollBus(cache, log=store, poll_interval=10.0).start()
    try:
        assert bus.wait_connected(10)
        assert cache.get_or_load("alice", store.load_secret) == old
        time.sleep(5.5)  # past NODE_TTL since the connect heartbeat, before the next poll
        assert cache.trusted  # connected, trusting its cache

        result = store.revoke("alice", actor="admin", wait="all", timeout=1)
        ack = result.acknowledgement
        assert ack is not None
        served = cache.get_or_load("alice", store.load_secret)
        assert bus.node_id in ack.acknowledged + ack.pending, (
            f"wait='all' answered complete={ack.complete} without the connected node"
        )
        assert not (ack.complete and served == old)
    finally:
        bus.close()
        engine.dispose()


# -- R4: catch-up trusts a page's first id, not its contiguity --------------------------------


def _slow_also(started: threading.Event, seconds: float) -> Any:
    """An ``also`` sub-plan that takes a while: like a 10 000-user cohort's refresh-family
    updates, it runs after the revocation took its ``now`` and before the events lock."""

    def plan(_ids: Any) -> Any:
        started.set()
        yield Fetch(sa.select(sa.func.pg_sleep(seconds)))

    return plan


@pytest.mark.service
def test_prune_by_time_never_leaves_a_hole_and_a_hole_is_cleared(
    pg: tuple[sa.Engine, OwnedTable],
) -> None:
    """Event times are not monotonic in event ids: a revocation takes ``now`` before its
    rotation and ``also`` statements, but its id at the very end, under the events lock.
    A slow revocation A (now = t0) and a quick B (now = t1 > t0) that commits first give
    id 1 at t1 and id 2 at t0. A prune by time whose horizon falls between t0 and t1 used
    to delete event 2 but keep event 1, and a node at watermark 0 read [1, 3] and never
    applied event 2 (user u1). Now pruning removes a prefix of ids only, and a node that
    finds any hole anyway (say, rows deleted by hand) clears instead of skipping."""
    engine, layout = pg
    store = SqlSecretStore(engine, RING, layout)
    old = {u: store.ensure(u).secret_bytes() for u in ("u1", "u2", "u3")}
    node = Node(store)
    node.until(lambda: node.world.connected)
    assert node.follower.watermark == 0
    for user, key in old.items():
        assert node.key(user) == key  # cached, trusted

    started = threading.Event()
    slow = threading.Thread(
        target=lambda: store.revoke("u1", actor="cohort", also=_slow_also(started, 0.8))
    )
    slow.start()
    assert started.wait(10)
    time.sleep(0.2)
    store.revoke("u2", actor="quick")  # commits first: event 1
    slow.join(10)  # event 2, with the earlier time
    store.revoke("u3", actor="later")  # event 3, the newest
    events = {e.id: e for e in store.events_after(0).events}
    assert events[2].user_ids == ("u1",)
    at1, at2 = events[1].at, events[2].at
    assert at1 is not None
    assert at2 is not None
    assert at2 < at1

    assert store.prune_events(at2 + (at1 - at2) / 2) == 0  # event 1 is recent: keep 1..3
    events_table = sa.table(layout.events_table, sa.column("id"))
    with engine.begin() as conn:  # a hole made by hand: the node must not skip it
        conn.execute(sa.delete(events_table).where(events_table.c.id == 2))
    node.until(lambda: node.follower.watermark == 3)
    assert node.key("u2") != old["u2"]
    assert node.key("u1") != old["u1"], "event 2 was skipped: u1's revoked key is served"


def test_prune_between_the_bounds_and_the_rows_hides_the_gap(
    db: tuple[sa.Engine, OwnedTable],
) -> None:
    """``events_after`` reads the log's bounds and its rows in two statements (two
    snapshots: READ COMMITTED on PostgreSQL, autocommit SELECTs on SQLite). A prune that
    commits in between (``sjti events prune --older-than 0`` is allowed) leaves a page
    whose ``oldest`` predates the prune and whose rows start after it: events 1 and 2
    are skipped, not cleared."""
    engine, layout = db
    store = SqlSecretStore(engine, RING, layout)
    pruner = SqlSecretStore(engine, RING, layout)
    old = {u: store.ensure(u).secret_bytes() for u in ("u1", "u2", "u3")}
    node = Node(store)
    node.until(lambda: node.world.connected)
    for user, key in old.items():
        assert node.key(user) == key
    for user in ("u1", "u2", "u3"):
        store.revoke(user, actor="admin")  # events 1, 2, 3; the node has not polled yet

    armed = [True]

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if armed[0] and layout.events_table in statement and "ORDER BY" in statement.upper():
            armed[0] = False
            pruner.prune_events(utc_now() + timedelta(seconds=1))  # all but the newest

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        node.until(lambda: node.follower.watermark == 3)
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    assert not armed[0]  # the prune did run between the two statements
    stale = [u for u in ("u1", "u2", "u3") if node.key(u) == old[u]]
    assert stale == [], f"revoked keys still served after the catch-up: {stale}"


# -- R5: the password grant's version check is skipped for a first login ----------------------


def _services(tmp_path: Path, **extra: Any) -> Services:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/svc.db",
        key_file=str(tmp_path / "keys.json"),
        login_max_failures=10_000,
        login_max_failures_per_ip=10_000,
        **extra,
    )
    return Services.build(settings)


def _password_grant(services: Services, name: str) -> dict[str, Any]:
    request: Any = type("R", (), {"client": None, "headers": {}})()
    return auth.password_grant(services, request, Response(), name, PASSWORD).model_dump()


def test_first_login_racing_a_logout_mints_a_token_that_outlives_it(tmp_path: Path) -> None:
    """Login A checks the password while the user has no key yet (``key_version`` None).
    Meanwhile login B creates the key and the user logs out everywhere (the key rotates,
    every family is revoked). A resumes: ``login(version=None)`` skips the compare-and-set
    and mints with the rotated key, so a grant that started before the logout committed
    yields tokens accepted after it returned (the invariant sessions.py states)."""
    services = _services(tmp_path)
    try:
        auth.register(NewUser(username="carol", password=PASSWORD), services, client_request())
        pause = Pause(services.engine, 2)  # after get_by_name, before the grant's transaction
        outcome: dict[str, Any] = {}

        def login_a() -> None:
            pause.thread = threading.get_ident()
            try:
                outcome["tokens"] = _password_grant(services, "carol")
            except BaseException as exc:  # recorded for the assertion
                outcome["error"] = exc

        with pause.installed():
            thread = threading.Thread(target=login_a, daemon=True)
            thread.start()
            assert pause.reached.wait(30)
            tokens_b = _password_grant(services, "carol")  # creates the key
            claims, user = verify_access_token(services, tokens_b["access_token"])
            me.logout(Principal(claims, user), services)  # returned: everything revoked
            pause.release.set()
            thread.join(30)
        if "error" in outcome:
            assert isinstance(outcome["error"], HTTPException)
            return  # refused (503 retry): the fix
        with pytest.raises(TokenError):
            verify_access_token(services, outcome["tokens"]["access_token"])
    finally:
        services.close()


# -- R6: the relay publishes inside the revoking request ---------------------------------------


@pytest.mark.service
def test_logout_answers_promptly_while_redis_hangs(tmp_path: Path, own_redis: RedisProcess) -> None:
    """Redis stops answering (SIGSTOP: a hung server, a black-holed network). The logout
    commits at once, then ``announce`` runs ``bus.relay`` in the request thread: a publish
    with a 5 s socket timeout and three retries, about 20 s. Every revocation (logout,
    admin, RFC 7009, reuse detection) holds a worker thread that long, so a client with
    a 10 s timeout sees a committed logout fail, and 40 of them stall the threadpool that
    also serves ``/me``. The log and the poll already deliver the event: the publish
    need not block the answer."""
    services = _services(tmp_path, redis_url=own_redis.url)
    proc = own_redis.proc
    assert proc is not None
    try:
        assert services.wait_ready(10)
        auth.register(NewUser(username="dave", password=PASSWORD), services, client_request())
        tokens = _password_grant(services, "dave")
        claims, user = verify_access_token(services, tokens["access_token"])
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            done = threading.Event()

            def logout() -> None:
                me.logout(Principal(claims, user), services)
                done.set()

            thread = threading.Thread(target=logout, daemon=True)
            started = time.monotonic()
            thread.start()
            answered = done.wait(3.0)
            elapsed = time.monotonic() - started
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        thread.join(30)
        assert answered, f"logout still blocked after {elapsed:.1f} s (committed long before)"
    finally:
        services.close()


# -- R7: RFC 7009 believes a wrong token_type_hint -----------------------------------------------


def test_rfc7009_with_a_wrong_hint_still_revokes_the_refresh_token(tmp_path: Path) -> None:
    """RFC 7009 section 2.1: "If the server is unable to locate the token using the given
    hint, it MUST extend its search across all of its supported token types." The route
    skips the refresh-token lookup whenever the hint says ``access_token``, fails to
    verify the refresh token as a JWT, and answers 200: the client is told its session
    ended, and the refresh token keeps working."""
    services = _services(tmp_path)
    try:
        auth.register(NewUser(username="erin", password=PASSWORD), services, client_request())
        tokens = _password_grant(services, "erin")
        assert oauth.revoke(services, tokens["refresh_token"], "access_token") == {}
        with pytest.raises(HTTPException) as refused:
            auth.refresh_grant(services, Response(), tokens["refresh_token"])
        assert refused.value.status_code == 400
    finally:
        services.close()


# -- attacks the code withstood ----------------------------------------------------------------


def test_event_ids_stay_gapless_and_commit_ordered_under_concurrent_revocations(
    db: tuple[sa.Engine, OwnedTable],
) -> None:
    """Eight writers revoke at once while a reader keeps reading the log: every page the
    reader sees is contiguous from the oldest id (no id becomes visible before a smaller
    one), and the final log is 1..N."""
    engine, layout = db
    store = SqlSecretStore(engine, RING, layout)
    users = [f"g{i}" for i in range(8)]
    for user in users:
        store.ensure(user)
    stop = threading.Event()
    holes: list[tuple[int, ...]] = []

    def reader() -> None:
        while not stop.is_set():
            ids = tuple(e.id for e in store.events_after(0).events)
            if ids != tuple(range(1, len(ids) + 1)):
                holes.append(ids)

    def writer(user: str) -> None:
        for _ in range(6):
            store.revoke(user, actor="load")

    threads = [threading.Thread(target=writer, args=(u,)) for u in users]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    watcher.join(10)
    assert holes == []
    assert [e.id for e in store.events_after(0).events] == list(range(1, 49))


def test_hints_out_of_order_duplicated_or_from_the_future_never_skip_an_event(
    db: tuple[sa.Engine, OwnedTable],
) -> None:
    """Against the real log: hint N+2 before N+1 reads the log (both applied); duplicates
    and replays change nothing; a hint far beyond the log's newest id is read, not
    believed (the watermark never passes the log)."""
    engine, layout = db
    store = SqlSecretStore(engine, RING, layout)
    old = {u: store.ensure(u).secret_bytes() for u in ("a", "b", "c")}
    node = Node(store)
    node.until(lambda: node.world.connected)
    for user, key in old.items():
        assert node.key(user) == key
    store.revoke("a", actor="t")
    store.revoke("b", actor="t")
    node.world.inbox += [encode_event(2, ["b"]), encode_event(1, ["a"]), encode_event(2, ["b"])]
    node.until(lambda: node.world.inbox == [] and node.follower.watermark == 2)
    assert node.key("a") != old["a"]
    assert node.key("b") != old["b"]
    assert node.key("c") == old["c"]  # untouched: replayed, not cleared
    node.world.inbox.append(encode_event(2**62, ["c"]))
    node.until(lambda: node.world.inbox == [])
    node.until(lambda: node.world.now > 1100)
    assert node.follower.watermark == 2


def test_a_fill_that_read_before_a_missed_revocation_is_not_stored_after_replay(
    db: tuple[sa.Engine, OwnedTable],
) -> None:
    """A fill reads alice's old key; the bus is lost (the plan suspends the cache) and
    alice is revoked elsewhere; the node reconnects, replays from its watermark and trusts
    again; only then does the fill finish. The epoch guard must refuse the old key and
    answer the new one."""
    engine, layout = db
    store = SqlSecretStore(engine, RING, layout)
    other = SqlSecretStore(engine, RING, layout)
    old = store.ensure("alice").secret_bytes()
    node = Node(store)
    node.until(lambda: node.world.connected)
    reading, resume = threading.Event(), threading.Event()
    answers: list[bytes | None] = []

    def slow_load(user_id: str) -> bytes | None:
        value = store.load_secret(user_id)
        if not reading.is_set():
            reading.set()
            resume.wait(10)
        return value

    def fill() -> None:
        answers.append(node.cache.get_or_load("alice", slow_load))

    filler = threading.Thread(target=fill)
    filler.start()
    assert reading.wait(10)  # the fill holds alice's old key
    node.world.fail_next_receive = ConnectionError("bus lost")
    node.until(lambda: not node.world.connected)
    assert not node.cache.trusted
    other.revoke("alice", actor="elsewhere")
    node.until(lambda: node.world.connected and node.follower.watermark == 1)
    assert node.follower.replayed == 1
    assert node.cache.trusted
    resume.set()
    filler.join(10)
    new = store.load_secret("alice")
    assert new != old
    assert answers == [new]
    assert node.key("alice") == new
