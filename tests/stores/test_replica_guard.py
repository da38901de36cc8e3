"""The replica guard's bookkeeping: what a replica read must prove, per user. Pure, no
database: every drop the cache makes must make the proof stricter, never looser; a drop
without an event id waits for a log read that began after it; forgetting folds into the
floor."""

from __future__ import annotations

from sjti.cache import KeyCache
from sjti.stores._replica import ReplicaGuard


def _read(guard: ReplicaGuard, latest: int) -> None:
    """A log read that starts now and sees ``latest``."""
    guard.read_log(guard.ticket(), latest)


def test_a_guard_that_never_saw_a_log_read_proves_nothing() -> None:
    """Before the first log read nobody knows what the node applied: the primary."""
    guard = ReplicaGuard()
    guard.dropped(3, ["a"])
    assert guard.need("a") is None
    _read(guard, 7)
    assert (guard.need("a"), guard.need("b")) == (7, 7)


def test_drops_with_event_ids_are_needed_by_their_users_only() -> None:
    """The bus replaying the log names each event: exactly those users need it."""
    guard = ReplicaGuard()
    _read(guard, 10)
    guard.dropped(11, ["a", "b"])
    guard.dropped(12, ["a"])
    assert (guard.need("a"), guard.need("b"), guard.need("c")) == (12, 11, 10)
    guard.dropped(13, None)  # a cohort naming nobody, or a bus starting at 13
    assert (guard.need("a"), guard.need("c")) == (13, 13)


def test_a_drop_without_an_event_id_waits_for_a_log_read_begun_after_it() -> None:
    """A version-1 message or a foreign listener: the primary until a log read that
    started after the drop returns; then the newest id that read saw."""
    guard = ReplicaGuard()
    _read(guard, 5)
    early = guard.ticket()  # a read already under way when the drop arrives
    guard.dropped(None, ["a"])
    assert guard.need("a") is None
    assert guard.need("b") == 5
    guard.read_log(early, 6)  # it may have missed the change: proves nothing for a
    assert guard.need("a") is None
    _read(guard, 9)
    assert (guard.need("a"), guard.need("b")) == (9, 5)


def test_a_drop_of_everyone_without_an_event_id_blocks_every_user() -> None:
    """An unreadable message, a v1 "all", a resync: nobody reads the replica until a log
    read that began after it, then everyone needs what it saw."""
    guard = ReplicaGuard()
    _read(guard, 5)
    early = guard.ticket()
    guard.dropped(None, None)
    guard.read_log(early, 5)
    assert guard.need("z") is None
    _read(guard, 8)
    assert guard.need("z") == 8


def test_too_many_pending_users_block_everyone_until_the_next_read() -> None:
    """Bounded memory for pending users too: beyond it, everyone waits."""
    guard = ReplicaGuard(max_users=4)
    _read(guard, 1)
    guard.dropped(None, ["a", "b", "c"])
    assert guard.need("d") == 1
    guard.dropped(None, ["d", "e"])
    assert guard.need("f") is None
    _read(guard, 3)
    assert (guard.need("a"), guard.need("f")) == (3, 3)


def test_forgetting_folds_users_into_the_floor() -> None:
    """Bounded memory: the oldest users forgotten raise the floor, so a forgotten entry
    never lets an older replica snapshot through."""
    guard = ReplicaGuard(max_users=4)
    _read(guard, 0)
    for event_id, user in enumerate("abcdef", start=1):
        guard.dropped(event_id, [user])
    assert guard.need("a") == 2  # forgotten: the floor (b's event was forgotten last)
    assert guard.need("f") == 6
    guard.dropped(7, [f"u{i}" for i in range(2)])  # more than a quarter: the floor
    assert guard.need("zzz") == 7


def test_the_cache_tells_its_drop_observers_before_every_drop() -> None:
    """Every way a KeyCache drops users reaches the observer, with the event id its
    caller gave: invalidate, invalidate(None), clear, and a lost bus's mark_untrusted."""
    cache = KeyCache(trusted=True)
    heard: list[tuple[int | None, tuple[str, ...] | None]] = []
    cache.add_drop_observer(lambda event, users: heard.append((event, users)))
    cache.invalidate(iter(["a", "b"]))
    cache.invalidate(["c"], event=4)
    cache.invalidate(None, event=5)
    cache.clear()
    cache.mark_untrusted()
    assert heard == [(None, ("a", "b")), (4, ("c",)), (5, None), (None, None), (None, None)]
