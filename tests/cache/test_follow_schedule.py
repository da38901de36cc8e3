"""The listen plan's schedule and bookkeeping, traced op by op with a spy cache.

tests/cache/test_follow.py drives the plan through revocation stories; this file pins
*when* it does each thing and *what it tells the cache*: the first ping one health-check
interval after connecting, a poll every poll interval, heartbeats between polls, the
trust lease, the health check failing a lease after an unanswered ping (never because
the plan itself ran late), the backoff count, and which log pages mean "replay" and which
mean "clear". A trace is a list of short strings ("1000.25 Ping",
"cache.mark_trusted(0.5,since=1000.25)"), so a failure shows the schedule that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from sjti._core.invalidation import encode_event
from sjti.cache import _follow as follow
from sjti.stores.base import EventPage, RevocationEvent

from .conftest import FloatClock


class SpyCache:
    """Records what the plan tells the cache, in the trace."""

    def __init__(self, trace: list[str]) -> None:
        self.trace = trace

    def _note(self, name: str, *args: Any) -> None:
        self.trace.append(f"cache.{name}({', '.join(map(repr, args))})")

    def clear(self, *, event: int | None = None) -> None:  # event: test_follow_drops.py
        self._note("clear")

    def invalidate(self, user_ids: Iterable[str] | None, *, event: int | None = None) -> None:
        self._note("invalidate", None if user_ids is None else tuple(user_ids))

    def _trust(self, name: str, lease: float | None, since: float | None) -> None:
        self.trace.append(f"cache.{name}({lease!r},since={since!r})")

    def mark_trusted(self, lease: float | None = None, *, since: float | None = None) -> None:
        self._trust("mark_trusted", lease, since)

    def resync(self, lease: float | None = None, *, since: float | None = None) -> None:
        self._trust("resync", lease, since)

    def suspend(self) -> None:
        self._note("suspend")

    def mark_untrusted(self) -> None:
        self._note("mark_untrusted")


class Harness:
    """Runs the plan, answering each op from a scripted world, tracing both sides."""

    def __init__(self, *, has_log: bool = True, health: float = 0.25, poll: float = 0.35) -> None:
        self.clock = FloatClock()
        self.trace: list[str] = []
        self.states: list[str] = []
        self.events: list[RevocationEvent] = []
        self.oldest: int | None = None  # None: from the first event kept
        self.latest_override: int | None = None
        self.inbox: list[str] = []
        self.alive = False  # what Receive reports besides payloads
        self.ping = True
        self.fail: dict[type, Exception] = {}
        self.slow: dict[type, float] = {}  # seconds the next op of that type takes
        self.follower = follow.Follower(
            SpyCache(self.trace),  # type: ignore[arg-type]
            has_log=has_log,
            health_check_interval=health,
            poll_interval=poll,
            backoff=lambda failures: 10.0 * failures,
            clock=self.clock,
            on_state=self.states.append,
        )
        self.plan = self.follower.run()
        self.op: follow.Op = next(self.plan)

    @property
    def latest(self) -> int:
        if self.latest_override is not None:
            return self.latest_override
        return self.events[-1].id if self.events else 0

    def add(self, *users: str) -> RevocationEvent:
        event = RevocationEvent(len(self.events) + 1, "user", users)
        self.events.append(event)
        return event

    def page(self, after: int) -> EventPage:
        kept = [e for e in self.events if self.oldest is None or e.id >= self.oldest]
        oldest = kept[0].id if kept else None
        return EventPage(tuple(e for e in kept if e.id > after), oldest, self.latest)

    def _advance(self, seconds: float) -> None:
        # Whole microseconds keep traces readable; a wait shorter than that still moves.
        later = round(self.clock.now + seconds, 6)
        self.clock.now = later if later > self.clock.now else self.clock.now + seconds

    def answer(self, op: follow.Op) -> Any:
        failure = self.fail.pop(type(op), None)
        if failure is not None:
            raise failure
        self._advance(self.slow.pop(type(op), 0.0))
        match op:
            case follow.Latest():
                return self.latest
            case follow.ReadLog(after):
                return self.page(after)
            case follow.Receive(timeout):
                self._advance(timeout)
                payloads, self.inbox = self.inbox, []
                return payloads, self.alive
            case follow.Ping():
                return self.ping
            case follow.Sleep(seconds):
                self._advance(seconds)
        return None

    def note(self, op: follow.Op) -> str:
        name = type(op).__name__
        match op:
            case follow.Heartbeat(watermark):
                return f"{self.clock.now:g} Heartbeat({watermark})"
            case follow.Receive(timeout):
                return f"{self.clock.now:g} Receive({round(timeout, 6):g})"
            case follow.ReadLog(after):
                return f"{self.clock.now:g} ReadLog({after})"
            case follow.Sleep(seconds) | follow.Republish(seconds):
                return f"{self.clock.now:g} {name}({seconds:g})"
            case follow.Connected(value):
                return f"{self.clock.now:g} Connected({value})"
        return f"{self.clock.now:g} {name}"

    def step(self) -> None:
        self.trace.append(self.note(self.op))
        try:
            result = self.answer(self.op)
        except Exception as exc:
            self.op = self.plan.throw(exc)
        else:
            self.op = self.plan.send(result)

    def until(self, done: Callable[[], bool], limit: int = 500) -> None:
        for _ in range(limit):
            if done():
                return
            self.step()
        raise AssertionError("the plan never got there")

    def run_until(self, text: str) -> list[str]:
        """Step until a line containing ``text`` is traced; return the trace since the call."""
        start = len(self.trace)
        self.until(lambda: any(text in line for line in self.trace[start:]))
        return self.trace[start:]


def without_receives(trace: list[str]) -> list[str]:
    return [line for line in trace if "Receive" not in line]


# ---------------------------------------------------------------------------------------
# with an event log


def test_connecting_syncs_with_the_log_then_trusts_for_one_lease() -> None:
    """First sync: Latest, clear, heartbeat the watermark, trust for 2 x health interval."""
    h = Harness(has_log=True, health=0.25)
    h.add("old")
    h.add("older")
    trace = h.run_until("1000 Connected(True)")
    assert trace == [
        "1000 Connect",
        "1000 Latest",
        "cache.clear()",
        "1000 Heartbeat(2)",
        "cache.mark_trusted(0.5,since=1000.0)",
        "1000 Connected(True)",
    ]
    assert h.states == ["connected"]
    assert (h.follower.watermark, h.follower.cleared, h.follower.replayed) == (2, 1, 0)


def test_the_listen_schedule_pings_polls_and_heartbeats_on_time() -> None:
    """Pings every 0.25 s, polls every 0.35 s, a heartbeat between polls, Receive never
    waits past the next deadline nor longer than one tick."""
    h = Harness(has_log=True, health=0.25, poll=0.35)
    h.run_until("1000 Connected(True)")
    start = len(h.trace)
    h.until(lambda: h.clock.now >= 1.0005e3 and isinstance(h.op, follow.Receive))
    assert h.trace[start:] == [
        "1000 Receive(0.1)",
        "1000.1 Receive(0.1)",
        "1000.2 Receive(0.05)",
        "1000.25 Ping",
        "cache.mark_trusted(0.5,since=1000.25)",
        "1000.25 Receive(0.1)",
        "1000.35 Latest",
        "1000.35 Heartbeat(0)",
        "1000.35 Republish(1)",
        "1000.35 Receive(0.1)",
        "1000.45 Receive(0.05)",
        "1000.5 Ping",
        "cache.mark_trusted(0.5,since=1000.5)",
    ]


def test_heartbeats_keep_their_own_schedule_when_polls_are_rare() -> None:
    """With a 3 s poll, the watermark is still heartbeaten every second (NODE_TTL is 5 s)."""
    h = Harness(has_log=True, health=10.0, poll=3.0)
    h.run_until("1000 Connected(True)")
    start = len(h.trace)
    h.until(lambda: h.clock.now >= 1003.0 and isinstance(h.op, follow.Receive))
    assert without_receives(h.trace[start:]) == [
        "1001 Heartbeat(0)",
        "1002 Heartbeat(0)",
        "1003 Latest",
        "1003 Heartbeat(0)",
        "1003 Republish(3)",
    ]


def test_receive_wakes_up_for_a_heartbeat_between_pings() -> None:
    """A heartbeat due between two pings is sent on time, not at the next ping."""
    h = Harness(has_log=True, health=0.07, poll=3.0)
    h.run_until("1000 Connected(True)")
    trace = h.run_until("Heartbeat(0)")
    assert trace[-2:] == ["1000.98 Receive(0.02)", "1001 Heartbeat(0)"]


def test_a_hint_between_polls_does_not_delay_the_next_poll() -> None:
    """A catch-up from a hint moves the heartbeat schedule, not the poll schedule."""
    h = Harness(has_log=True, health=10.0, poll=0.35)
    h.run_until("1000 Connected(True)")
    h.add("alice")
    h.inbox.append(encode_event(1, ["alice"]))
    assert h.run_until("Heartbeat(1)")[-1] == "1000.1 Heartbeat(1)"
    assert without_receives(h.run_until("Latest")) == ["1000.35 Latest"]


def test_republish_waits_at_least_one_second() -> None:
    """A fast poll must not republish events a relay is still publishing."""
    h = Harness(has_log=True, health=10.0, poll=0.2)
    assert "1000.2 Republish(1)" in h.run_until("1000.2 Republish(1)")


def test_a_silent_link_fails_the_health_check_one_lease_after_its_unanswered_ping() -> None:
    """No answer to the ping sent at 1000.25 and no traffic: the first read that begins
    more than a lease (0.5 s) later finds nothing, so the link is lost; then a backoff of
    10 s x consecutive failures, and the cache kept but bypassed."""
    h = Harness(has_log=True, health=0.25, poll=10.0)
    h.ping = False
    trace = h.run_until("Connected(False)")
    assert "1000.25 Ping" in trace
    assert "1000.85 Receive(0.1)" in trace  # began 0.6 s after the ping: the fatal read
    assert trace[-2:] == ["cache.suspend()", "1000.95 Connected(False)"]
    assert h.run_until("Sleep(") == ["1000.95 Disconnect", "1000.95 Sleep(10)"]
    assert h.states == ["connected", "disconnected:HealthCheckFailed"]
    h.fail[follow.Connect] = ConnectionError("refused")
    assert h.run_until("Connected(") == [
        "1010.95 Connect",
        "cache.suspend()",
        "1010.95 Connected(False)",
    ]
    assert h.run_until("Sleep(")[-1] == "1010.95 Sleep(20)"  # two failures in a row
    assert h.states[-1] == "disconnected:ConnectionError"


@pytest.mark.parametrize("slow_op", [follow.Latest, follow.Heartbeat, follow.Ping])
def test_a_plan_that_ran_late_reads_before_it_judges_the_link(slow_op: type) -> None:
    """CPU starvation (or a slow database call) stalls the plan for 12 leases while the
    server keeps answering: the answer waiting in the socket is read, and the link is
    kept (no disconnect, no resync). The old rule, "no proof for a lease since the last
    read", declared it lost before reading."""
    h = Harness(has_log=True, health=0.25, poll=0.35)
    h.alive = True  # every read finds the pong or a message
    h.run_until("Connected(True)")
    h.slow[slow_op] = 6.0
    h.until(lambda: slow_op not in h.slow and h.clock.now >= 1010)
    assert h.states == ["connected"]
    assert not any("Connect" in line for line in h.trace[7:])
    assert h.follower.cleared == 1  # the first sync only


def test_a_dead_link_is_still_found_when_the_plan_ran_late() -> None:
    """The same stall with a server that stopped answering: the first read that begins a
    lease after the unanswered ping finds nothing, and the link is lost at once."""
    h = Harness(has_log=True, health=1.0, poll=10.0)
    h.ping = False
    h.run_until("1000 Connected(True)")
    h.slow[follow.Heartbeat] = 6.0  # the heartbeat after the ping at 1001 ends at 1007
    trace = h.run_until("Connected(False)")
    assert without_receives(trace)[:2] == ["1001 Ping", "1001 Heartbeat(0)"]
    assert trace[-3:] == ["1007 Receive(0)", "cache.suspend()", "1007 Connected(False)"]
    assert h.states == ["connected", "disconnected:HealthCheckFailed"]


def test_a_pong_trusts_from_when_its_ping_went_out_and_traffic_renews_nothing() -> None:
    """Messages prove nothing about what is behind them, so they never renew the lease. A
    pong read 0.25 s after its ping went out trusts until a lease after the ping; one read
    more than a lease late sets a deadline already past, and the link is kept (it did
    answer)."""
    h = Harness(has_log=True, health=0.25, poll=10.0)
    h.ping = False
    h.alive = True  # every read finds something, but no pong yet: nothing renews
    h.run_until("1000 Connected(True)")
    assert h.run_until("1000.25 Ping")[:-1] == [
        "1000 Receive(0.1)",
        "1000.1 Receive(0.1)",
        "1000.2 Receive(0.05)",
    ]
    h.slow[follow.Receive] = 0.15  # the pong is read at 1000.5
    h.step()
    assert h.trace[-2:] == ["1000.25 Receive(0.1)", "cache.mark_trusted(0.5,since=1000.25)"]
    h.alive = False
    h.run_until("1000.5 Ping")
    h.alive = True
    h.slow[follow.Receive] = 0.6  # read at 1001.2, 0.7 s after the ping
    h.step()
    h.step()
    assert h.trace[-3:] == [  # a deadline (1001) already past when read
        "1000.5 Receive(0.1)",
        "cache.mark_trusted(0.5,since=1000.5)",
        "1001.2 Ping",
    ]
    assert h.states == ["connected"]


def test_a_successful_reconnect_resets_the_backoff() -> None:
    """After a good connection drops, the next backoff starts from one failure again."""
    h = Harness(has_log=True, health=0.25, poll=10.0)
    h.fail[follow.Connect] = ConnectionError("refused")
    h.run_until("Sleep(10)")
    h.run_until("Connected(True)")
    h.fail[follow.Receive] = ConnectionError("reset")
    assert "Sleep(10)" in h.run_until("Sleep(")[-1]
    assert h.states == [
        "disconnected:ConnectionError",
        "connected",
        "disconnected:ConnectionError",
    ]


def test_a_poll_that_finds_nothing_new_only_heartbeats() -> None:
    """max(id) unchanged: no log read, a heartbeat of the same watermark."""
    h = Harness(has_log=True, health=10.0, poll=0.35)
    h.add("a")
    h.run_until("Connected(True)")
    trace = without_receives(h.run_until("Republish(1)"))
    assert trace == ["1000.35 Latest", "1000.35 Heartbeat(1)", "1000.35 Republish(1)"]


def test_a_poll_behind_the_log_replays_and_heartbeats_the_new_watermark() -> None:
    """max(id) moved: read after the watermark, drop exactly those users, heartbeat."""
    h = Harness(has_log=True, health=10.0, poll=0.35)
    h.run_until("Connected(True)")
    h.add("alice")
    h.add("bob", "carol")
    trace = without_receives(h.run_until("Republish(1)"))
    assert trace == [
        "1000.35 Latest",
        "1000.35 ReadLog(0)",
        "cache.invalidate(('alice',))",
        "cache.invalidate(('bob', 'carol'))",
        "1000.35 Heartbeat(2)",
        "1000.35 Republish(1)",
    ]
    assert (h.follower.watermark, h.follower.replayed) == (2, 2)


def test_a_log_behind_the_watermark_clears_and_follows_it() -> None:
    """A restored (older) database: the node cannot trust what it applied; it clears."""
    h = Harness(has_log=True, health=10.0, poll=0.35)
    for user in "abc":
        h.add(user)
    h.run_until("Connected(True)")
    h.events = h.events[:1]
    trace = without_receives(h.run_until("Republish(1)"))
    assert trace[:4] == [
        "1000.35 Latest",
        "1000.35 ReadLog(3)",
        "cache.clear()",
        "1000.35 Heartbeat(1)",
    ]
    assert (h.follower.watermark, h.follower.cleared) == (1, 2)


# ---------------------------------------------------------------------------------------
# catch-up after an outage: which pages replay, which clear


def outage(h: Harness) -> None:
    """Connect, then lose the link (the watermark survives)."""
    h.run_until("Connected(True)")
    h.fail[follow.Receive] = ConnectionError("link down")
    h.run_until("Connected(False)")


def reconnect(h: Harness) -> list[str]:
    return without_receives(h.run_until("Connected(True)"))


@pytest.mark.parametrize(
    ("oldest", "replays"),
    [(None, True), (1, True), (2, True), (3, False)],
    ids=["nothing-pruned", "oldest-kept", "next-is-oldest", "next-pruned"],
)
def test_replay_needs_the_event_right_after_the_watermark(
    oldest: int | None, replays: bool
) -> None:
    """Watermark 1: if event 2 is still in the log, replay; if it was pruned, clear."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    h.add("w")
    outage(h)
    for user in ("x", "y", "z"):
        h.add(user)
    h.oldest = oldest
    trace = reconnect(h)
    if replays:
        assert trace[4:6] == ["cache.invalidate(('x',))", "cache.invalidate(('y',))"]
        assert (h.follower.watermark, h.follower.replayed, h.follower.cleared) == (4, 3, 1)
    else:
        assert trace[4] == "cache.clear()"
        assert (h.follower.watermark, h.follower.replayed, h.follower.cleared) == (4, 0, 2)
    assert "Heartbeat(4)" in trace[-3]


def test_nothing_new_after_an_outage_replays_nothing_and_keeps_the_cache() -> None:
    """Back with the log unchanged: one read, no drop, trust again."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    h.add("w")
    outage(h)
    h.oldest = 5  # everything pruned, but nothing after the watermark was missed
    h.latest_override = 1
    trace = reconnect(h)
    assert [line.split(" ", 1)[-1] for line in trace[3:6]] == [
        "ReadLog(1)",
        "Heartbeat(1)",
        "cache.mark_trusted(20.0,since=1010.0)",
    ]


def test_a_hole_inside_a_page_clears_and_jumps_to_the_logs_newest() -> None:
    """Ids are gapless: a missing id inside the page means it was pruned mid-read."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    outage(h)
    first = h.add("a")
    h.add("b")
    third = h.add("c")
    h.events = [first, third]  # event 2 vanished between the bounds and the page
    h.latest_override = 3
    trace = reconnect(h)
    assert trace[4:6] == ["cache.invalidate(('a',))", "cache.clear()"]
    assert "Heartbeat(3)" in trace[6]
    assert (h.follower.watermark, h.follower.replayed) == (3, 1)


def test_catch_up_reads_page_after_page_until_the_newest() -> None:
    """A log page is limited: the node reads on from its new watermark until it is current."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    outage(h)
    for user in "abcd":
        h.add(user)
    pages = iter([2, 4])
    full_page = h.page

    def limited(after: int) -> EventPage:
        page = full_page(after)
        stop = next(pages)
        return EventPage(tuple(e for e in page.events if e.id <= stop), page.oldest, page.latest)

    h.page = limited  # type: ignore[method-assign]
    trace = reconnect(h)
    assert [line.split(" ", 1)[-1] for line in trace if "ReadLog" in line] == [
        "ReadLog(0)",
        "ReadLog(2)",
    ]
    assert h.follower.watermark == 4


def test_an_empty_page_ends_the_catch_up_even_if_latest_is_ahead() -> None:
    """Events not yet visible (uncommitted) are read on the next poll, not in a busy loop."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    outage(h)
    h.latest_override = 9
    trace = reconnect(h)
    assert sum("ReadLog" in line for line in trace) == 1
    assert h.follower.watermark == 0


# ---------------------------------------------------------------------------------------
# hints


def test_a_hint_for_the_current_watermark_reads_nothing() -> None:
    """Already applied: no log read at all (two relays publish the same event)."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    h.add("alice")
    h.run_until("Connected(True)")
    h.inbox.append(encode_event(1, ["alice"]))
    h.until(lambda: h.clock.now >= 1001)
    assert not any("ReadLog" in line or "invalidate" in line for line in h.trace)


def test_a_hint_for_a_new_event_reads_the_log_after_the_watermark() -> None:
    """The next event id: one read after the watermark, the log's users dropped."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    h.run_until("Connected(True)")
    h.add("alice")
    h.inbox.append(encode_event(1, ["alice"]))
    trace = without_receives(h.run_until("1000.1 Heartbeat(1)"))
    assert trace[-3:] == [
        "1000.1 ReadLog(0)",
        "cache.invalidate(('alice',))",
        "1000.1 Heartbeat(1)",
    ]


# ---------------------------------------------------------------------------------------
# without an event log


def test_without_a_log_connecting_clears_and_trusts_and_losing_drops_everything() -> None:
    """First-generation rule: resync on connect, mark untrusted (and clear) on loss."""
    h = Harness(has_log=False, health=0.25)
    assert h.run_until("1000 Connected(True)") == [
        "1000 Connect",
        "cache.resync(0.5,since=1000.0)",
        "1000 Connected(True)",
    ]
    h.fail[follow.Receive] = ConnectionError("down")
    assert h.run_until("Connected(False)")[-2:] == [
        "cache.mark_untrusted()",
        "1000 Connected(False)",
    ]


def test_without_a_log_only_pings_are_scheduled() -> None:
    """No poll, no heartbeat, no log read; Receive waits up to the next ping."""
    h = Harness(has_log=False, health=0.25, poll=0.05)
    h.run_until("1000 Connected(True)")
    start = len(h.trace)
    h.until(lambda: h.clock.now >= 1000.5 and isinstance(h.op, follow.Receive))
    assert h.trace[start:] == [
        "1000 Receive(0.1)",
        "1000.1 Receive(0.1)",
        "1000.2 Receive(0.05)",
        "1000.25 Ping",
        "cache.mark_trusted(0.5,since=1000.25)",
        "1000.25 Receive(0.1)",
        "1000.35 Receive(0.1)",
        "1000.45 Receive(0.05)",
        "1000.5 Ping",
        "cache.mark_trusted(0.5,since=1000.5)",
    ]


def test_without_a_log_messages_drop_what_they_name() -> None:
    """Event hints and v1 messages alike drop their users; garbage drops everyone."""
    h = Harness(has_log=False, health=10.0)
    h.run_until("Connected(True)")
    h.inbox.extend([encode_event(5, ["alice"]), "garbage"])
    h.until(lambda: h.clock.now >= 1000.2)
    assert [line for line in h.trace if "invalidate" in line] == [
        "cache.invalidate(('alice',))",
        "cache.invalidate(None)",
    ]
    assert h.follower.watermark is None


def test_the_watermark_is_unknown_until_a_catch_up() -> None:
    """Asking for it before the first sync is a programming error, not a silent 0."""
    h = Harness(has_log=True)
    with pytest.raises(RuntimeError):
        h.follower._mark()
