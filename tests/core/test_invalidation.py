"""The bus message codec: exact round trips, size limits, fail-closed decoding."""

from __future__ import annotations

import pytest

from sjti._core.invalidation import MAX_MESSAGE_BYTES, decode_invalidation, encode_invalidation


def test_round_trip_names_exactly_the_users() -> None:
    """Every node must drop exactly the users that were revoked."""
    [message] = encode_invalidation(["alice", "bob", "ünïcode"])
    assert decode_invalidation(message) == ["alice", "bob", "ünïcode"]


def test_none_means_everyone() -> None:
    """A cohort too large to list becomes one 'drop everything' message."""
    [message] = encode_invalidation(None)
    assert decode_invalidation(message) is None


def test_large_lists_split_under_the_notify_limit() -> None:
    """PostgreSQL NOTIFY refuses payloads of 8000 bytes: no message may reach that."""
    ids = [f"user-{i:06d}" for i in range(5000)]
    messages = encode_invalidation(ids)
    assert len(messages) > 1
    assert all(len(m.encode()) <= MAX_MESSAGE_BYTES for m in messages)
    decoded = [u for m in messages for u in (decode_invalidation(m) or [])]
    assert decoded == ids


@pytest.mark.parametrize(
    "garbage",
    ["", "not json", "[]", '{"v": 2, "users": []}', '{"v": 1, "users": [1]}', '{"v": 1}'],
)
def test_unreadable_messages_fail_closed(garbage: str) -> None:
    """A message a node cannot read makes it drop everything, never nothing."""
    assert decode_invalidation(garbage) is None
