"""Strict base64url and JSON codecs for token segments.

Strict means: one accepted spelling per value. base64url without padding or whitespace and
with zero trailing bits (RFC 7515 §2, RFC 4648 §3.5); JSON objects only, no duplicate member
names (RFC 7515 §5.2 lets us refuse them), bounded nesting. Callers check the size of the
whole token before anything here runs.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

import orjson
import pybase64

from ..errors import MalformedTokenError

__all__ = [
    "B64URL_ALPHABET",
    "CANONICAL",
    "MAX_JSON_DEPTH",
    "b64url_decode",
    "b64url_decode_unchecked",
    "b64url_encode",
    "dumps",
    "loads_object",
    "nesting_depth",
]

B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MAX_JSON_DEPTH = 16

# The last character of an unpadded group carries unused low bits that must be zero, else
# two spellings decode to the same bytes. 2 chars left -> 4 unused bits; 3 chars -> 2 bits.
_CANONICAL_LAST: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),
    frozenset(c for i, c in enumerate(B64URL_ALPHABET) if i & 0x0F == 0),
    frozenset(c for i, c in enumerate(B64URL_ALPHABET) if i & 0x03 == 0),
)
_PADDING = (b"", b"", b"==", b"=")


_STD_TO_URL = bytes.maketrans(b"+/", b"-_")
# Below this size the stdlib's call overhead is lower than pybase64's; above, pybase64 wins.
_SMALL = 96


def b64url_encode(data: bytes) -> bytes:
    """base64url without padding."""
    if len(data) < _SMALL:
        return binascii.b2a_base64(data, newline=False).translate(_STD_TO_URL).rstrip(b"=")
    return pybase64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode_unchecked(segment: bytes) -> bytes:
    """Decode a segment already known to hold only base64url alphabet characters.

    Checks length and canonical trailing bits. The JWS decoder checks the alphabet once for
    the whole token, so this skips it; anyone else calls :func:`b64url_decode`.
    """
    rest = len(segment) & 3
    if rest == 1:
        raise MalformedTokenError("invalid base64url length")
    if rest and segment[-1] not in _CANONICAL_LAST[rest]:
        raise MalformedTokenError("non-canonical base64url")
    try:
        decoded: bytes = pybase64.b64decode(segment + _PADDING[rest], altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        raise MalformedTokenError("invalid base64url") from None
    return decoded


def b64url_decode(segment: bytes | str) -> bytes:
    """Strict base64url decode: alphabet, no padding, canonical trailing bits."""
    if isinstance(segment, str):
        if not segment.isascii():
            raise MalformedTokenError("invalid base64url")
        segment = segment.encode("ascii")
    if segment.translate(None, B64URL_ALPHABET):
        # pybase64 (like the stdlib) maps -_ to +/ but would also let +/ through
        raise MalformedTokenError("invalid base64url")
    return b64url_decode_unchecked(segment)


# Types orjson would serialise in a way that does not parse back to the same value
# (dataclasses, datetimes, subclasses of str/int/dict/list) are refused with TypeError,
# so what the issuer MACs is exactly what a verifier will parse.
_STRICT = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
CANONICAL = _STRICT | orjson.OPT_SORT_KEYS


def dumps(value: Any) -> bytes:
    """Compact JSON (UTF-8, no spaces) as every JOSE library produces it.

    Raises ``TypeError`` for values that are not plain JSON data.
    """
    return orjson.dumps(value, option=_STRICT)


def nesting_depth(raw: bytes, value: Any) -> int:
    """Upper-bounded quickly from ``raw``, exact from ``value`` only when it matters."""
    brackets = raw.count(b"{") + raw.count(b"[")
    return brackets if brackets <= MAX_JSON_DEPTH else _depth(value)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MalformedTokenError("duplicate member name")
    return obj


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def loads_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a JSON object strictly; any problem is a :class:`MalformedTokenError`."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedTokenError("invalid JSON") from None
    if type(obj) is not dict:
        raise MalformedTokenError("JSON value is not an object")
    # Depth can't exceed the number of opening brackets, so the walk is rarely needed.
    if nesting_depth(raw, obj) > max_depth:
        raise MalformedTokenError("JSON nested too deeply")
    # A dict cannot hold duplicates, so if it re-encodes to the exact input the input had
    # none. Only other spellings (spaces, escapes) pay for the slower exact check.
    if orjson.dumps(obj) != raw:
        try:
            json.loads(raw, object_pairs_hook=_reject_duplicates)
        except ValueError:
            raise MalformedTokenError("invalid JSON") from None
    return obj
