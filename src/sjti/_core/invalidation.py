"""The invalidation message: which users' keys changed. Pure encode/decode.

Carried by every bus (Redis pub/sub, PostgreSQL NOTIFY) as UTF-8 JSON text:
``{"v": 1, "users": ["u1", "u2"]}``, or ``{"v": 1, "all": true}`` when the list would not
fit (NOTIFY payloads stop at 8000 bytes) and every node must drop its whole cache.
A message a node cannot read is treated as "all": failing closed costs only cache misses.

Version 2 messages are *hints* for the revocation event log (the database is the truth):
``{"v": 2, "event": 42, "users": ["u1"]}``, or ``{"v": 2, "event": 42}`` when the list
would not fit (the node reads event 42 from the log). Event ids are gapless, so a node
that applied event 41 may apply 42 from the message alone; any other gap means "read the
log after my watermark". :func:`decode_notice` reads both versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Notice",
    "decode_invalidation",
    "decode_notice",
    "encode_event",
    "encode_invalidation",
]

MAX_MESSAGE_BYTES: Final = 7000  # under PostgreSQL's 8000-byte NOTIFY limit
_VERSION: Final = 1
_ALL: Final = orjson.dumps({"v": _VERSION, "all": True}).decode()


def encode_invalidation(user_ids: Sequence[str] | None) -> list[str]:
    """One or more messages naming ``user_ids`` (``None``: everyone). Never over the limit."""
    if user_ids is None:
        return [_ALL]
    messages: list[str] = []
    batch: list[str] = []
    size = 0
    for user_id in user_ids:
        cost = len(orjson.dumps(user_id)) + 1
        if cost > MAX_MESSAGE_BYTES // 2:  # an absurd id: make everyone drop everything
            return [_ALL]
        if batch and size + cost > MAX_MESSAGE_BYTES - 32:
            messages.append(orjson.dumps({"v": _VERSION, "users": batch}).decode())
            batch, size = [], 0
        batch.append(user_id)
        size += cost
    if batch:
        messages.append(orjson.dumps({"v": _VERSION, "users": batch}).decode())
    return messages


def decode_invalidation(message: str | bytes) -> list[str] | None:
    """The user ids a message names, or ``None`` for "drop everything" (also if unreadable)."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("v") != _VERSION or data.get("all") is True:
        return None
    users = data.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        return None
    return users


_EVENT_VERSION: Final = 2
_MAX_EVENT_ID: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Notice:
    """A decoded message. ``event``: the event id (``None`` for version 1 messages and
    unreadable ones). ``users``: the ids to drop, or ``None`` when the message does not
    list them (every user, or: read the event from the log)."""

    event: int | None
    users: list[str] | None


def encode_event(event_id: int, user_ids: Sequence[str] | None) -> str:
    """One hint for event ``event_id``; lists the users only when they fit one message."""
    message: dict[str, object] = {"v": _EVENT_VERSION, "event": event_id}
    if user_ids is not None:
        listed = orjson.dumps({**message, "users": list(user_ids)})
        if len(listed) <= MAX_MESSAGE_BYTES:
            return listed.decode()
    return orjson.dumps(message).decode()


def decode_notice(message: str | bytes) -> Notice:
    """Either version; anything unreadable is ``Notice(None, None)``: drop everything."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return Notice(None, None)
    if not isinstance(data, dict) or data.get("v") != _EVENT_VERSION:
        return Notice(None, decode_invalidation(message))
    event = data.get("event")
    if type(event) is not int or not 0 < event <= _MAX_EVENT_ID:
        return Notice(None, None)
    users = data.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        return Notice(event, None)
    return Notice(event, users)
