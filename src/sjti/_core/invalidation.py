"""The invalidation message: which users' keys changed. Pure encode/decode.

Carried by every bus (Redis pub/sub, PostgreSQL NOTIFY) as UTF-8 JSON text:
``{"v": 1, "users": ["u1", "u2"]}``, or ``{"v": 1, "all": true}`` when the list would not
fit (NOTIFY payloads stop at 8000 bytes) and every node must drop its whole cache.
A message a node cannot read is treated as "all": failing closed costs only cache misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson

__all__ = ["MAX_MESSAGE_BYTES", "decode_invalidation", "encode_invalidation"]

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
