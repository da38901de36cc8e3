"""The replica guard's bookkeeping: what a replica read must prove, per user. Pure, no
database: every way a node can learn of an event must make the proof stricter, never
looser, and forgetting must fold into the floor."""

from __future__ import annotations

from sjti.stores._replica import ReplicaGuard
from sjti.stores.base import EventPage, RevocationEvent


def _page(*events: tuple[int, tuple[str, ...] | None], oldest: int = 1) -> EventPage:
    found = tuple(RevocationEvent(i, "user", users) for i, users in events)
    latest = found[-1].id if found else 0
    return EventPage(found, oldest, latest)


def test_a_node_that_never_read_the_log_proves_nothing() -> None:
    """Before the first log read nobody knows what the node applied: the primary."""
    guard = ReplicaGuard()
    guard.saw_commit(3, ["a"])
    assert guard.need("a") is None


def test_starting_from_the_newest_id_needs_it_for_everyone() -> None:
    """A bus that starts at the log's newest id clears instead of reading the events."""
    guard = ReplicaGuard()
    guard.saw_latest(41)
    assert guard.need("anyone") == 41
    guard.saw_latest(41)  # a poll that finds nothing new changes nothing
    assert guard.need("anyone") == 41


def test_events_read_in_order_are_needed_by_their_users_only() -> None:
    """Contiguous pages record each user's newest event; others keep the floor."""
    guard = ReplicaGuard()
    guard.saw_latest(10)
    guard.saw_page(10, EventPage(_page((11, ("a", "b")), (12, ("a",))).events, 1, 12))
    assert (guard.need("a"), guard.need("b"), guard.need("c")) == (12, 11, 10)
    guard.saw_latest(12)  # the poll sees what the page already told: no raise
    assert guard.need("c") == 10


def test_cohort_events_gaps_and_a_log_ahead_raise_the_floor() -> None:
    """An event naming nobody, a page the bus cannot replay, or a log ahead of what was
    read: everyone needs it."""
    guard = ReplicaGuard()
    guard.saw_latest(0)
    guard.saw_page(0, EventPage(_page((1, ("a",)), (2, None)).events, 1, 2))
    assert guard.need("z") == 2
    guard.saw_page(2, EventPage(_page((5, ("a",))).events, 5, 9))  # 3 and 4 pruned
    assert guard.need("z") == 9
    guard.saw_latest(15)
    assert guard.need("z") == 15
    guard.saw_page(40, EventPage((), 1, 15))  # a watermark we never saw it reach
    assert guard.need("z") == 40


def test_forgetting_folds_users_into_the_floor() -> None:
    """Bounded memory: the oldest users forgotten raise the floor, so a forgotten entry
    never lets an older replica snapshot through."""
    guard = ReplicaGuard(max_users=4)
    guard.saw_latest(0)
    for event_id, user in enumerate("abcdef", start=1):
        guard.saw_commit(event_id, [user])
    assert guard.need("a") == 2  # forgotten: the floor (b's event was forgotten last)
    assert guard.need("f") == 6
    guard.saw_commit(7, [f"u{i}" for i in range(2)])  # more than a quarter: the floor
    assert guard.need("zzz") == 7
    guard.saw_commit(None, ["f"])  # nothing committed
    assert guard.need("f") == 7
