"""The listen plan with an event log, driven op by op: replay, gaps, hints, polls.

No thread, no service: a scripted executor answers each operation, so every branch of
the plan (first sync, replay after an outage, pruned gap, hint fast path, poll that finds
an unpublished event) is reached deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sjti._core.invalidation import encode_event, encode_invalidation
from sjti.cache import KeyCache
from sjti.cache import _follow as follow
from sjti.stores.base import EventPage, RevocationEvent

from .conftest import FloatClock

KEY = b"k" * 32


class Log:
    """An in-memory event log with the store's semantics (gapless ids, prunable)."""

    def __init__(self) -> None:
        self.events: list[RevocationEvent] = []
        self.pruned_below = 1

    def add(self, *users: str) -> RevocationEvent:
        event = RevocationEvent(len(self.events) + 1, "user", users or None)
        self.events.append(event)
        return event

    def page(self, after: int) -> EventPage:
        kept = [e for e in self.events if e.id >= self.pruned_below]
        return EventPage(
            tuple(e for e in kept if e.id > after),
            kept[0].id if kept else None,
            self.events[-1].id if self.events else 0,
        )


class World:
    """Answers the plan's operations; records the interesting ones."""

    def __init__(self, cache: KeyCache, log: Log, clock: FloatClock) -> None:
        self.cache, self.log, self.clock = cache, log, clock
        self.inbox: list[str] = []
        self.heartbeats: list[int] = []
        self.reads: list[int] = []
        self.fail_next_receive: Exception | None = None
        self.connected = False

    def answer(self, op: follow.Op) -> Any:
        match op:
            case follow.Latest():
                return self.log.page(0).latest
            case follow.ReadLog(after):
                self.reads.append(after)
                return self.log.page(after)
            case follow.Heartbeat(watermark):
                self.heartbeats.append(watermark)
            case follow.Receive(timeout):
                if self.fail_next_receive is not None:
                    exc, self.fail_next_receive = self.fail_next_receive, None
                    raise exc
                self.clock.advance(timeout)
                payloads, self.inbox = self.inbox, []
                return payloads, bool(payloads)
            case follow.Ping():
                return True
            case follow.Sleep(seconds):
                self.clock.advance(seconds)
            case follow.Connected(value):
                self.connected = value
        return None


def make(poll_interval: float = 1.0) -> tuple[follow.Follower, World]:
    clock = FloatClock()
    cache = KeyCache(clock=clock)
    states: list[str] = []
    follower = follow.Follower(
        cache,
        has_log=True,
        health_check_interval=1.0,
        poll_interval=poll_interval,
        backoff=lambda failures: 0.01,
        clock=clock,
        on_state=states.append,
    )
    return follower, World(cache, Log(), clock)


class Driver:
    """Runs the plan one operation at a time against a :class:`World`."""

    def __init__(self, follower: follow.Follower, world: World) -> None:
        self.plan = follower.run()
        self.world = world
        self.op: follow.Op = next(self.plan)

    def until(self, done: Callable[[], bool], limit: int = 1000) -> None:
        for _ in range(limit):
            if done():
                return
            try:
                result = self.world.answer(self.op)
            except Exception as exc:
                self.op = self.plan.throw(exc)
            else:
                self.op = self.plan.send(result)
        raise AssertionError("the plan never got there")

    def steps(self, count: int) -> None:
        remaining = [count]

        def spent() -> bool:
            remaining[0] -= 1
            return remaining[0] < 0

        self.until(spent)


def warm(cache: KeyCache, *users: str) -> None:
    for user in users:
        cache.get_or_load(user, lambda _: KEY)


def test_first_sync_starts_at_the_logs_newest_event() -> None:
    """A node that never saw the log cannot replay: it clears and starts at max(id)."""
    follower, world = make()
    world.log.add("old")
    world.log.add("older")
    Driver(follower, world).until(lambda: world.connected)
    assert follower.watermark == 2
    assert world.heartbeats == [2]
    assert follower.cache.trusted
    assert (follower.cleared, follower.replayed) == (1, 0)


def test_a_hint_makes_the_node_read_the_log_which_alone_drops_and_moves() -> None:
    """The message is a hint: who is dropped and how far the watermark moves come from
    the log, once (no second drop that would throw away a fill of the new key)."""
    follower, world = make()
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, "alice", "bob")
    event = world.log.add("alice")
    world.inbox.append(encode_event(event.id, ["bob"]))  # the message says bob: the log wins
    driver.until(lambda: isinstance(driver.op, follow.ReadLog))
    assert ("alice" in follower.cache, "bob" in follower.cache) == (True, True)
    invalidations = follower.cache.stats().invalidations
    driver.until(lambda: bool(world.heartbeats) and world.heartbeats[-1] == 1)
    assert follower.watermark == 1
    assert ("alice" in follower.cache, "bob" in follower.cache) == (False, True)
    assert follower.cache.stats().invalidations == invalidations + 1
    assert world.reads == [0]


def test_a_forged_hint_cannot_make_a_node_skip_the_real_event() -> None:
    """Someone who can write to the bus announces event 1 before it exists: the node must
    still apply the real event 1 (a revocation of alice) when it commits."""
    follower, world = make()
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, "alice", "bob")
    world.inbox.append(encode_event(1, ["bob"]))  # forged: the log has no event 1
    driver.steps(30)
    assert follower.watermark == 0
    real = world.log.add("alice")
    warm(follower.cache, "bob")
    world.inbox.append(encode_event(real.id, real.user_ids))
    driver.until(lambda: follower.watermark == 1)
    assert "alice" not in follower.cache


def test_a_hint_past_a_gap_reads_the_log() -> None:
    """Event 3 arrives but 2 never did: read everything after the watermark."""
    follower, world = make()
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, "a", "b", "c")
    world.log.add("a")
    world.log.add("b")
    third = world.log.add("zed")
    world.inbox.append(encode_event(third.id, third.user_ids))
    driver.until(lambda: follower.watermark == 3)
    assert world.reads == [0]
    assert ("a" in follower.cache, "b" in follower.cache, "c" in follower.cache) == (
        False,
        False,
        True,
    )
    assert follower.replayed == 3


def test_old_and_duplicate_hints_change_nothing() -> None:
    """A republished event (two relays) must not make the node drop anything twice."""
    follower, world = make()
    driver = Driver(follower, world)
    first = world.log.add("alice")
    driver.until(lambda: world.connected)
    warm(follower.cache, "alice")
    world.inbox.append(encode_event(first.id, first.user_ids))
    driver.steps(20)
    assert "alice" in follower.cache
    assert follower.watermark == 1


def test_outage_replays_missed_events_and_keeps_everyone_else() -> None:
    """After the bus comes back only the revoked users are dropped: no cold cache."""
    follower, world = make()
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, *(f"u{i}" for i in range(100)))
    world.fail_next_receive = ConnectionError("link down")
    driver.until(lambda: not world.connected)
    assert not follower.cache.trusted  # bypassed during the outage...
    assert len(follower.cache) == 100  # ...but kept for the replay
    for i in range(10):
        world.log.add(f"u{i}")
    driver.until(lambda: world.connected)
    assert follower.watermark == 10
    assert follower.cache.trusted
    assert len(follower.cache) == 90
    assert all(f"u{i}" not in follower.cache for i in range(10))
    assert (follower.replayed, follower.cleared) == (10, 1)


def test_a_pruned_gap_clears_the_cache() -> None:
    """Events older than retention are gone: the node cannot know whom they named."""
    follower, world = make()
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, "keep-me?")
    world.fail_next_receive = ConnectionError("link down")
    driver.until(lambda: not world.connected)
    for i in range(5):
        world.log.add(f"x{i}")
    world.log.pruned_below = 4  # events 1..3 pruned while the node was away
    driver.until(lambda: world.connected)
    assert len(follower.cache) == 0
    assert follower.watermark == 5
    assert follower.cleared == 2


def test_the_poll_finds_an_event_nobody_published() -> None:
    """Publisher cut off after commit, subscribers connected: max(id) gives it away."""
    follower, world = make(poll_interval=0.5)
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, "alice")
    world.log.add("alice")  # committed, never published
    started = world.clock.now
    driver.until(lambda: follower.watermark == 1)
    assert "alice" not in follower.cache
    assert world.clock.now - started <= 0.5 + follow.TICK + 1e-9


def test_version_one_messages_still_drop_their_users() -> None:
    """A node of the previous release publishing v1 messages is still obeyed."""
    follower, world = make()
    driver = Driver(follower, world)
    driver.until(lambda: world.connected)
    warm(follower.cache, "alice", "bob")
    world.inbox.extend(encode_invalidation(["alice"]))
    driver.steps(10)
    assert ("alice" in follower.cache, "bob" in follower.cache) == (False, True)
    assert follower.watermark == 0


def test_a_renewal_descheduled_before_it_reaches_the_cache_grants_no_more_trust() -> None:
    """The listener gets a pong, then is descheduled (the GIL, the OS) for 10 s before the
    cache takes the renewal: the deadline was fixed from the ping's send time, so the
    cache is not trusted past a lease after that ping. (First version: the lease left was
    computed before the stall and added to the cache's clock after it: 10 s extra.)"""
    clock = FloatClock()

    class Descheduled(KeyCache):
        def mark_trusted(self, *args: Any, **kwargs: Any) -> None:
            clock.advance(10.0)  # between the plan's clock reading and this call
            super().mark_trusted(*args, **kwargs)

    cache = Descheduled(clock=clock)
    follower = follow.Follower(
        cache,
        has_log=False,
        health_check_interval=1.0,
        poll_interval=1.0,
        backoff=lambda failures: 1.0,
        clock=clock,
        on_state=lambda state: None,
    )
    plan = follower.run()
    op = next(plan)
    while not isinstance(op, follow.Ping):
        if isinstance(op, follow.Receive):
            clock.advance(op.timeout)
        op = plan.send(([], 0) if isinstance(op, follow.Receive) else None)
    pinged = clock()
    plan.send(True)  # answered at once; the renewal stalls 10 s on its way to the cache
    assert clock() >= pinged + 10
    assert not cache.trusted
