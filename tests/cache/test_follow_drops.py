"""What the listen plan tells a real cache's drop observers: the event id behind every
drop it makes from the log, and none for a message without one (a read replica's guard
then makes the user wait for a log read: tests/stores/test_replica_guard.py)."""

from __future__ import annotations

from sjti.cache import KeyCache

from .test_follow_schedule import Harness, outage, reconnect

Heard = list[tuple[int | None, tuple[str, ...] | None]]


def _observed(h: Harness) -> Heard:
    """Swap the spy for a real cache (before the plan touches it) and listen to it."""
    heard: Heard = []
    cache = KeyCache()
    cache.add_drop_observer(lambda event, users: heard.append((event, users)))
    h.follower.cache = cache
    return heard


def test_the_first_sync_and_every_replayed_event_carry_their_ids() -> None:
    """Starting at the log's newest id explains the clear; a hint's page names each event."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    heard = _observed(h)
    h.add("old")
    h.run_until("Connected(True)")
    assert heard == [(1, None)]
    h.add("alice")
    h.add("bob", "carol")
    h.inbox.append('{"v": 2, "event": 3}')
    h.until(lambda: h.follower.watermark == 3)
    assert heard[1:] == [(2, ("alice",)), (3, ("bob", "carol"))]


def test_a_pruned_gap_clears_at_the_newest_id() -> None:
    """Events missed and pruned during an outage: the clear is explained by the newest id."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    heard = _observed(h)
    h.add("w")
    outage(h)
    for user in ("x", "y", "z"):
        h.add(user)
    h.oldest = 3
    reconnect(h)
    assert heard[-1] == (4, None)


def test_a_message_without_an_event_id_drops_unexplained() -> None:
    """A version-1 message (or an unreadable one) names no event: the observer hears None."""
    h = Harness(has_log=True, health=10.0, poll=10.0)
    heard = _observed(h)
    h.run_until("Connected(True)")
    h.inbox.extend(['{"v": 1, "users": ["mallory"]}', "not json"])
    h.until(lambda: len(heard) == 3)
    assert heard[1:] == [(None, ("mallory",)), (None, None)]
