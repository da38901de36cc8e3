"""The strict codec against the standard library: same bytes out, one spelling in.

``sjti._core.codec`` takes the fast path (pybase64, orjson) and must still agree exactly
with ``base64`` and ``json``: a differing encoding would make tokens no other JOSE library
can read, a differing decoding would give a token two meanings.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sjti import MalformedTokenError
from sjti._core.codec import (
    B64URL_ALPHABET,
    MAX_JSON_DEPTH,
    b64url_decode,
    b64url_decode_unchecked,
    b64url_encode,
    dumps,
    loads_object,
    nesting_depth,
)

ALPHABET = B64URL_ALPHABET.decode("ascii")
# Both encoder paths: below 96 bytes the stdlib's binascii, from 96 on pybase64.
SIZES = st.integers(0, 400)
# JSON the codec must read as the stdlib does: text keys, no floats (orjson and json may
# spell a float differently, which only sends the input down the slower exact path).
json_leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


def stdlib_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def stdlib_depth(value: Any) -> int:
    """RFC-free reference: an object or array is one level more than its deepest child."""
    if isinstance(value, dict):
        return 1 + max(map(stdlib_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(stdlib_depth, value), default=0)
    return 0


# ---------------------------------------------------------------------------------------
# base64url


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=SIZES)
def test_b64url_encode_matches_the_stdlib_at_every_size(data: Any, size: int) -> None:
    """Both encoder paths must write exactly what base64.urlsafe_b64encode does, unpadded."""
    raw = data.draw(st.binary(min_size=size, max_size=size), label="raw")
    assert stdlib_encode(raw) == b64url_encode(raw)


@pytest.mark.parametrize("size", [93, 96, 99, 150, 300])
@pytest.mark.parametrize("last", ["X", "A", "_", "-", "9"])
def test_b64url_encode_keeps_trailing_characters_that_look_like_padding(
    size: int, last: str
) -> None:
    """Only '=' is padding: an encoding that ends in any other character keeps it.

    ``size`` is a multiple of 3, so the last character spells the last byte's low 6 bits;
    the sizes sit on both sides of the 96-byte switch between the two encoders.
    """
    raw = bytes(size - 1) + bytes([ALPHABET.index(last)])
    encoded = b64url_encode(raw)
    assert last.encode() == encoded[-1:]
    assert stdlib_encode(raw) == encoded


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300))
def test_b64url_decode_matches_the_stdlib(raw: bytes) -> None:
    """What the stdlib reads from a canonical spelling, we read too (bytes, str, unchecked)."""
    encoded = stdlib_encode(raw)
    padded = encoded + b"=" * (-len(encoded) % 4)
    expected = base64.urlsafe_b64decode(padded)
    assert expected == b64url_decode(encoded)
    assert expected == b64url_decode(encoded.decode("ascii"))
    assert expected == b64url_decode_unchecked(encoded)


@pytest.mark.parametrize("length", [1, 5, 9, 97])
def test_b64url_length_one_more_than_a_multiple_of_four_is_malformed(length: int) -> None:
    """4n + 1 characters encode no byte string: such a segment is refused, not truncated."""
    with pytest.raises(MalformedTokenError):
        b64url_decode("A" * length)
    with pytest.raises(MalformedTokenError):
        b64url_decode_unchecked(b"A" * length)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("AA", True), ("AB", False), ("AP", False), ("AQ", True), ("AAA", True), ("AAB", False)],
)
def test_b64url_unused_bits_must_be_zero(text: str, canonical: bool) -> None:
    """Two spellings of one byte string would let a token be re-encoded and still verify."""
    if canonical:
        assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == b64url_decode(text)
    else:
        with pytest.raises(MalformedTokenError):
            b64url_decode(text)


@pytest.mark.parametrize("text", ["é", "AAA\u00e9", "\u0660\u0661"])
def test_b64url_non_ascii_text_is_malformed(text: str) -> None:
    """Non-ASCII text is no base64url, and must fail as MalformedTokenError, not as a crash."""
    with pytest.raises(MalformedTokenError):
        b64url_decode(text)


# ---------------------------------------------------------------------------------------
# JSON: dumps


@settings(max_examples=100, deadline=None)
@given(value=json_objects)
def test_dumps_matches_the_stdlibs_compact_form(value: dict[str, Any]) -> None:
    """Compact UTF-8 JSON, as every JOSE library writes it, with member order kept."""
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert expected == dumps(value)


@dataclasses.dataclass
class _Point:
    x: int


class _Name(str):
    pass


class _Count(int):
    pass


class _Map(dict[str, Any]):
    pass


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), id="datetime"),
        pytest.param(datetime.date(2030, 1, 1), id="date"),
        pytest.param(datetime.time(12, 0), id="time"),
        pytest.param(_Point(1), id="dataclass"),
        pytest.param(_Name("x"), id="str-subclass"),
        pytest.param(_Count(1), id="int-subclass"),
        pytest.param(_Map(a=1), id="dict-subclass"),
    ],
)
def test_dumps_refuses_values_that_do_not_parse_back_the_same(value: Any) -> None:
    """What the issuer signs must be what a verifier parses: no silent conversions."""
    with pytest.raises(TypeError):
        dumps({"v": value})


# ---------------------------------------------------------------------------------------
# JSON: loads_object and depth


@settings(max_examples=100, deadline=None)
@given(value=json_objects, spaced=st.booleans())
def test_loads_object_reads_what_the_stdlib_reads(value: dict[str, Any], spaced: bool) -> None:
    """Compact or not, a JSON object without duplicates parses to the stdlib's value."""
    raw = json.dumps(value, separators=(", ", ": ") if spaced else (",", ":")).encode()
    if stdlib_depth(value) <= MAX_JSON_DEPTH:
        assert json.loads(raw) == loads_object(raw)


@settings(max_examples=100, deadline=None)
@given(value=json_objects)
def test_nesting_depth_agrees_with_a_recursive_count(value: dict[str, Any]) -> None:
    """The quick bracket count may only ever overestimate, and is exact where it matters."""
    raw = json.dumps(value).encode()
    depth = nesting_depth(raw, value)
    assert depth >= stdlib_depth(value)
    if depth > MAX_JSON_DEPTH:
        assert stdlib_depth(value) == depth


def _nested(depth: int, inner: Any = 0, *, kind: str = "list") -> Any:
    value = inner
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_depth_limit_counts_the_object_itself_and_each_level_once(kind: str, depth: int) -> None:
    """Exactly MAX_JSON_DEPTH levels (the outer object is level 1) are accepted, one more not."""
    value = {"x": _nested(depth - 1, kind=kind)}
    raw = json.dumps(value).encode()
    if depth <= MAX_JSON_DEPTH:
        assert value == loads_object(raw)
    else:
        with pytest.raises(MalformedTokenError):
            loads_object(raw)
    assert depth == nesting_depth(raw, value) or depth <= MAX_JSON_DEPTH


def test_depth_counts_nesting_not_brackets() -> None:
    """Many sibling arrays and brackets inside strings are wide, not deep: accepted."""
    value = {"siblings": [[] for _ in range(40)], "text": "[[[[{{{{" * 10, "deep": _nested(3)}
    raw = json.dumps(value).encode()
    assert nesting_depth(raw, value) == 4
    assert value == loads_object(raw)


def test_depth_is_measured_at_the_deepest_branch() -> None:
    """A deep branch after shallow ones must not hide behind them (no early exit)."""
    value = {"a": 1, "b": [1, 2], "c": {"d": _nested(MAX_JSON_DEPTH, kind="dict")}}
    raw = json.dumps(value).encode()
    assert nesting_depth(raw, value) == MAX_JSON_DEPTH + 2
    with pytest.raises(MalformedTokenError):
        loads_object(raw)


def test_max_depth_argument_is_honoured() -> None:
    """A caller's tighter limit applies exactly: depth 3 passes a limit of 3, not of 2."""
    raw = b'{"a":{"b":[1]}}'
    assert loads_object(raw, max_depth=3) == {"a": {"b": [1]}}
    with pytest.raises(MalformedTokenError):
        loads_object(raw, max_depth=2)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":1}',
        b'{"a":1, "a":2}',
        b'{"a":1,"\\u0061":2}',
        b'{"o":{"k":1,"k":2}}',
    ],
)
def test_duplicate_member_names_are_malformed_at_any_level(raw: bytes) -> None:
    """RFC 7515 §5.2 lets us refuse duplicates; keeping the last would give two meanings."""
    with pytest.raises(MalformedTokenError):
        loads_object(raw)


@pytest.mark.parametrize("raw", [b'{"a": 1}', b'{"a":"\\u00e9"}', b'{ "a" : [ 1 , 2 ] }'])
def test_other_spellings_without_duplicates_are_accepted(raw: bytes) -> None:
    """Spaces and escapes only take the slower exact path; the value is the stdlib's."""
    assert json.loads(raw) == loads_object(raw)
