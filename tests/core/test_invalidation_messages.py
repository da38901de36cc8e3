"""The bus messages at their edges: batch sizes to the byte, v2 event hints, fail-closed reads.

A node that misreads a message either serves a revoked key (it dropped nobody) or skips an
event; so every field is checked for its exact meaning, and anything unreadable must decode
to "drop everything" (v1) or "read the log" (v2), never to "nothing happened".
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sjti._core.invalidation import (
    MAX_MESSAGE_BYTES,
    Notice,
    decode_invalidation,
    decode_notice,
    encode_event,
    encode_invalidation,
)

# Ten-character ids cost 13 bytes each in a batch (quotes and a comma): 536 of them fill
# the batch budget of MAX_MESSAGE_BYTES - 32 = 6968 bytes exactly.
PER_BATCH = 536


def ids(count: int, start: int = 0) -> list[str]:
    return [f"user{i:06d}" for i in range(start, start + count)]


def batches(messages: list[str]) -> list[int]:
    return [len(json.loads(m)["users"]) for m in messages]


# ---------------------------------------------------------------------------------------
# version 1


def test_a_batch_fills_its_budget_to_the_byte() -> None:
    """Ids that fill the budget exactly go in one message; one more starts a second."""
    assert batches(encode_invalidation(ids(PER_BATCH))) == [PER_BATCH]
    assert batches(encode_invalidation(ids(PER_BATCH + 1))) == [PER_BATCH, 1]


def test_every_batch_gets_the_same_budget() -> None:
    """The second message is filled as full as the first: the count restarts from zero."""
    assert batches(encode_invalidation(ids(2 * PER_BATCH))) == [PER_BATCH, PER_BATCH]


def test_full_batches_stay_under_the_notify_limit() -> None:
    """The budget leaves room for the envelope: no message reaches MAX_MESSAGE_BYTES."""
    for message in encode_invalidation(ids(3 * PER_BATCH)):
        assert len(message.encode()) <= MAX_MESSAGE_BYTES


def test_an_id_of_half_the_limit_is_listed_a_longer_one_drops_everyone() -> None:
    """Up to half a message per id is listed; beyond, every node drops its whole cache."""
    longest = "x" * (MAX_MESSAGE_BYTES // 2 - 3)  # 2 quotes and a comma: cost 3500
    [message] = encode_invalidation([longest])
    assert [longest] == decode_invalidation(message)
    [everyone] = encode_invalidation(["a", longest + "x"])
    assert decode_invalidation(everyone) is None


def test_no_ids_make_no_message() -> None:
    """An empty revocation announces nothing (None, not [], means everyone)."""
    assert encode_invalidation([]) == []


@pytest.mark.parametrize(
    ("message", "users"),
    [
        ({"v": 1, "all": True, "users": ["a"]}, None),
        ({"v": 1, "all": False, "users": ["a"]}, ["a"]),
        ({"v": 1, "all": 1, "users": ["a"]}, ["a"]),
        ({"v": 1, "users": []}, []),
        ({"v": 1, "users": "a"}, None),
    ],
)
def test_v1_fields_mean_exactly_what_they_say(message: dict[str, Any], users: Any) -> None:
    """ "all": true wins over a list; only the JSON value true means everyone."""
    assert users == decode_invalidation(json.dumps(message))


# ---------------------------------------------------------------------------------------
# version 2 hints


def test_an_event_hint_round_trips_with_its_users() -> None:
    """encode_event and decode_notice agree on the event id and the users."""
    assert Notice(42, ["alice", "bob"]) == decode_notice(encode_event(42, ["alice", "bob"]))
    assert json.loads(encode_event(42, ["alice"])) == {"v": 2, "event": 42, "users": ["alice"]}


def test_an_event_without_users_says_read_the_log() -> None:
    """None (everyone, or too many to list) is written as the bare event id."""
    assert json.loads(encode_event(7, None)) == {"v": 2, "event": 7}
    assert Notice(7, None) == decode_notice(encode_event(7, None))


def test_an_event_hint_lists_users_up_to_the_limit_exactly() -> None:
    """A listed hint of exactly MAX_MESSAGE_BYTES is sent; one byte more drops the list."""
    envelope = len(encode_event(1, [""]))  # {"v":2,"event":1,"users":[""]}
    fits = ["x" * (MAX_MESSAGE_BYTES - envelope)]
    assert len(encode_event(1, fits)) == MAX_MESSAGE_BYTES
    assert Notice(1, fits) == decode_notice(encode_event(1, fits))
    too_long = [fits[0] + "x"]
    assert Notice(1, None) == decode_notice(encode_event(1, too_long))


@pytest.mark.parametrize("event", [1, 2**63 - 1])
def test_event_ids_are_positive_64_bit_integers(event: int) -> None:
    """Both ends of the database's id range are readable hints."""
    assert Notice(event, ["u"]) == decode_notice(
        json.dumps({"v": 2, "event": event, "users": ["u"]})
    )


@pytest.mark.parametrize("event", [0, -1, 2**63, True, 1.0, "1", None])
def test_an_impossible_event_id_means_drop_everything(event: Any) -> None:
    """A hint whose id cannot be an event is unreadable: Notice(None, None)."""
    assert Notice(None, None) == decode_notice(json.dumps({"v": 2, "event": event}))


@pytest.mark.parametrize("users", ["alice", [1], ["a", None], {"a": 1}, None])
def test_a_hint_with_unreadable_users_still_names_its_event(users: Any) -> None:
    """The event id alone is enough: the node reads whom it names from the log."""
    assert Notice(5, None) == decode_notice(json.dumps({"v": 2, "event": 5, "users": users}))


@pytest.mark.parametrize("message", ["", "not json", "[1]", b"\xff", '"v"'])
def test_garbage_is_drop_everything(message: str | bytes) -> None:
    """Anything unreadable fails closed, in both versions."""
    assert Notice(None, None) == decode_notice(message)


def test_a_v1_message_is_read_by_the_v2_decoder() -> None:
    """A node of the previous release is still obeyed: its users, no event id."""
    [message] = encode_invalidation(["alice"])
    assert Notice(None, ["alice"]) == decode_notice(message)
    assert Notice(None, None) == decode_notice(encode_invalidation(None)[0])
