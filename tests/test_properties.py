"""Property tests: tampering, hostile input, the strict codec and the sjti binding.

Each property says "for every input", so hypothesis looks for the one input that breaks it:
a changed byte that still verifies, garbage that escapes the TokenError tree, a second
base64url spelling, or two different claim sets sharing an sjti.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sjti import (
    BoundaryVerifier,
    ClaimsPolicy,
    ConfigurationError,
    Issuer,
    MalformedTokenError,
    TokenError,
    UserKey,
    UserVerifier,
)
from sjti._core.binding import compute_sjti
from sjti._core.codec import B64URL_ALPHABET, b64url_decode, b64url_encode
from sjti.testing import FrozenClock

from .conftest import AUDIENCE, ISSUER, NOW, key_for

# Module-level objects: hypothesis runs many examples per test, and function-scoped
# fixtures would be shared across them anyway (hypothesis refuses that).
USER_KEY = UserKey(bytes(range(32)))
POLICY = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE)
TAMPER_ALGS = ("HS256", "EdDSA")
ALPHABET = B64URL_ALPHABET.decode("ascii")
TOKEN_CHARS = B64URL_ALPHABET + b"."
FORBIDDEN_IN_B64URL = ("=", "+", "/", " ", "\t", "\n", "\r", "\x0b", "\x0c")


def _layers(alg: str) -> tuple[BoundaryVerifier, UserVerifier]:
    boundary = BoundaryVerifier(key_for(alg), POLICY, clock=FrozenClock(NOW))
    return boundary, UserVerifier(boundary)


def _issue(alg: str) -> bytes:
    issuer = Issuer(key_for(alg), issuer=ISSUER, audience=AUDIENCE, clock=FrozenClock(NOW))
    return issuer.issue("user-1", USER_KEY, claims={"scope": "read"}).encode("ascii")


LAYER_ALGS = ("HS256", "RS256", "ES256", "ES512", "EdDSA")
TOKENS = {alg: _issue(alg) for alg in LAYER_ALGS}
LAYERS = {alg: _layers(alg) for alg in LAYER_ALGS}


def assert_refused(alg: str, token: bytes | str) -> None:
    boundary, verifier = LAYERS[alg]
    with pytest.raises(TokenError):
        boundary.verify(token)
    with pytest.raises(TokenError):
        verifier.verify(token, USER_KEY)


def assert_only_token_errors(alg: str, token: bytes | str) -> None:
    """Feed both layers; accepting is allowed, raising anything but TokenError is not."""
    boundary, verifier = LAYERS[alg]
    with contextlib.suppress(TokenError):
        boundary.verify(token)
    with contextlib.suppress(TokenError):
        verifier.verify(token, USER_KEY)


def test_issued_tokens_are_accepted() -> None:
    """The tampering tests only mean something if the untouched token is valid."""
    for alg, token in TOKENS.items():  # every algorithm used below, not only TAMPER_ALGS
        boundary, verifier = LAYERS[alg]
        assert boundary.verify(token) == verifier.verify(token, USER_KEY)


# ---------------------------------------------------------------------------------------
# 1. any single-byte change is refused


@pytest.mark.parametrize("alg", TAMPER_ALGS)
@settings(max_examples=300, deadline=None)
@given(data=st.data(), as_text=st.booleans())
def test_any_single_byte_replacement_is_refused(alg: str, data: Any, as_text: bool) -> None:
    """A token with one byte changed anywhere must never verify: the signature covers all."""
    token = TOKENS[alg]
    at = data.draw(st.integers(0, len(token) - 1), label="position")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != token[at]), label="byte")
    mutated = token[:at] + bytes([new]) + token[at + 1 :]

    assert_refused(alg, mutated.decode("latin-1") if as_text else mutated)


@pytest.mark.parametrize("alg", TAMPER_ALGS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_byte_insertion_is_refused(alg: str, data: Any) -> None:
    """An extra byte anywhere (a dot, a base64url char, garbage) must not verify."""
    token = TOKENS[alg]
    at = data.draw(st.integers(0, len(token)), label="position")
    new = data.draw(st.sampled_from(sorted(TOKEN_CHARS)) | st.integers(0, 255), label="byte")

    assert_refused(alg, token[:at] + bytes([new]) + token[at:])


@pytest.mark.parametrize("alg", TAMPER_ALGS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_byte_deletion_is_refused(alg: str, data: Any) -> None:
    """A token with one byte cut out anywhere must not verify."""
    token = TOKENS[alg]
    at = data.draw(st.integers(0, len(token) - 1), label="position")

    assert_refused(alg, token[:at] + token[at + 1 :])


@pytest.mark.parametrize("alg", TAMPER_ALGS)
def test_every_position_with_every_token_char_is_refused(alg: str) -> None:
    """Exhaustive: no position has a base64url or dot substitute that still verifies."""
    token = TOKENS[alg]
    boundary, _ = LAYERS[alg]
    accepted: list[tuple[int, str]] = []
    for at in range(len(token)):
        for new in TOKEN_CHARS:
            if new == token[at]:
                continue
            try:
                boundary.verify(token[:at] + bytes([new]) + token[at + 1 :])
            except TokenError:
                continue
            accepted.append((at, chr(new)))

    assert accepted == []


@pytest.mark.parametrize("alg", TAMPER_ALGS)
def test_every_single_deletion_is_refused(alg: str) -> None:
    """Exhaustive: cutting any one byte (a dot, the last signature char) never verifies."""
    token = TOKENS[alg]
    boundary, _ = LAYERS[alg]
    accepted: list[int] = []
    for at in range(len(token)):
        try:
            boundary.verify(token[:at] + token[at + 1 :])
        except TokenError:
            continue
        accepted.append(at)

    assert accepted == []


# ---------------------------------------------------------------------------------------
# 2. hostile input raises TokenError and nothing else

# JSON the way an attacker writes it: any type, big ints, NaN, deep-ish nesting.
junk_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "none", "at+jwt", ISSUER, AUDIENCE, "user-1"])
)
junk_json = st.recursive(
    junk_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
numeric_dates = (
    st.integers(NOW - 2_000, NOW + 2_000)
    | st.floats(NOW - 2_000, NOW + 2_000)
    | st.integers(-(2**70), 2**70)
    | st.floats()
)


def _mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """``common`` three times in four: keeps most examples past the early checks."""
    return st.sampled_from([common, common, common, rare]).flatmap(lambda strategy: strategy)


def _header_strategy(alg: str) -> st.SearchStrategy[Any]:
    kid = key_for(alg).kid
    members = st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from([alg, "none", "None", "HS256", "RS256", "EdDSA"]) | junk_json,
            "kid": st.just(kid) | junk_json,
            "typ": st.sampled_from(["at+jwt", "application/AT+JWT", "JWT"]) | junk_json,
            "crit": junk_json,
            "b64": st.booleans(),
            "zip": st.just("DEF"),
            "enc": junk_json,
        },
    )
    extra = st.dictionaries(st.text(max_size=6), junk_json, max_size=3)
    valid = st.just({"alg": alg, "kid": kid, "typ": "at+jwt"})
    return _mostly(valid, st.builds(lambda m, e: {**e, **m}, members, extra) | junk_json)


REGISTERED = ("iss", "aud", "sub", "jti", "iat", "exp", "nbf", "sjti")
# Start from valid claims, then break a few: most examples then reach the deep checks.
valid_claims = st.fixed_dictionaries(
    {
        "iss": st.just(ISSUER),
        "aud": st.sampled_from([AUDIENCE, [AUDIENCE, "x"]]),
        "sub": st.text(min_size=1, max_size=10),
        "jti": st.text(min_size=1, max_size=10),
        "iat": st.integers(NOW - 600, NOW),
        "exp": st.integers(NOW + 1, NOW + 600),
    }
)
claim_tweaks = st.dictionaries(
    st.sampled_from(REGISTERED) | st.text(max_size=6),
    numeric_dates | st.sampled_from(["", [], [AUDIENCE], ["x"], "x" * 1025]) | junk_json,
    max_size=3,
)
claims_strategy = st.builds(
    lambda base, tweaks, drops: {k: v for k, v in {**base, **tweaks}.items() if k not in drops},
    valid_claims,
    claim_tweaks,
    st.sets(st.sampled_from(REGISTERED), max_size=2),
)


def _ascii_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _utf8_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _spaced_json(value: Any) -> bytes:
    return json.dumps(value, indent=1).encode()


def _duplicated_json(value: Any) -> bytes:
    """Repeat the first member, as a parser-confusion attack would."""
    raw = _ascii_json(value)
    if isinstance(value, dict) and value:
        first = _ascii_json(dict([next(iter(value.items()))]))[1:-1]
        return raw[:-1] + b"," + first + b"}"
    return raw


JSON_SPELLINGS: tuple[Callable[[Any], bytes], ...] = (
    _ascii_json,
    _utf8_json,
    _spaced_json,
    _duplicated_json,
)


def _sign(alg: str, header: bytes, payload: bytes) -> str:
    signing_input = b64url_encode(header) + b"." + b64url_encode(payload)
    return (signing_input + b"." + b64url_encode(key_for(alg).sign(signing_input))).decode()


@pytest.mark.parametrize("alg", ["HS256", "EdDSA"])
@settings(max_examples=150, deadline=None)
@given(token=st.binary(max_size=600) | st.text(max_size=300))
def test_random_bytes_and_text_raise_only_token_errors(alg: str, token: bytes | str) -> None:
    """Whatever a client sends, callers must only ever have to catch TokenError."""
    assert_only_token_errors(alg, token)


@pytest.mark.parametrize("alg", ["HS256", "EdDSA"])
@settings(max_examples=150, deadline=None)
@given(segments=st.lists(st.text(ALPHABET, max_size=120), min_size=1, max_size=5))
def test_random_base64url_segments_raise_only_token_errors(alg: str, segments: list[str]) -> None:
    """Well-shaped but meaningless segments must end in TokenError, not a codec crash."""
    assert_only_token_errors(alg, ".".join(segments))


@pytest.mark.parametrize("alg", ["HS256", "EdDSA"])
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_signed_random_headers_and_claims_raise_only_token_errors(alg: str, data: Any) -> None:
    """Past the signature, any header or claims JSON must still end in TokenError or success."""
    header = data.draw(_header_strategy(alg), label="header")
    claims = data.draw(_mostly(claims_strategy, junk_json), label="claims")
    if isinstance(claims, dict) and data.draw(st.booleans(), label="bind"):
        # not bindable when the issuer could not write it (e.g. an int beyond 64 bits)
        with contextlib.suppress(ConfigurationError):
            claims["sjti"] = compute_sjti(claims, USER_KEY)
    spell = data.draw(
        _mostly(st.sampled_from(JSON_SPELLINGS[:2]), st.sampled_from(JSON_SPELLINGS[2:])),
        label="spelling",
    )
    payload = data.draw(_mostly(st.just(spell(claims)), st.binary(max_size=200)), label="payload")

    assert_only_token_errors(alg, _sign(alg, spell(header), payload))


@pytest.mark.parametrize("alg", LAYER_ALGS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_signatures_raise_only_token_errors(alg: str, data: Any) -> None:
    """Signature bytes of any length and value (zeros, r >= n, S >= L) are refused cleanly."""
    signing_input = TOKENS[alg].rpartition(b".")[0]
    true_length = len(key_for(alg).sign(signing_input))
    signature = data.draw(
        st.binary(min_size=true_length, max_size=true_length)
        | st.sampled_from([b"\x00" * true_length, b"\xff" * true_length, b""])
        | st.binary(max_size=2 * true_length),
        label="signature",
    )
    token = signing_input + b"." + b64url_encode(signature)

    assert_refused(alg, token)


# ---------------------------------------------------------------------------------------
# 3. the codec: one spelling per value


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_b64url_roundtrip(raw: bytes) -> None:
    """Every byte string must survive encode/decode, from bytes and from str."""
    encoded = b64url_encode(raw)

    assert raw == b64url_decode(encoded)
    assert raw == b64url_decode(encoded.decode("ascii"))
    assert b"=" not in encoded


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=60),
    bad=st.sampled_from(FORBIDDEN_IN_B64URL),
    data=st.data(),
)
def test_b64url_decode_refuses_padding_std_alphabet_and_whitespace(
    raw: bytes, bad: str, data: Any
) -> None:
    """Padding, '+', '/' or whitespace anywhere would give a token a second spelling."""
    encoded = b64url_encode(raw).decode("ascii")
    at = data.draw(st.integers(0, len(encoded)), label="position")
    spoiled = encoded[:at] + bad + encoded[at:]

    with pytest.raises(MalformedTokenError):
        b64url_decode(spoiled)
    with pytest.raises(MalformedTokenError):
        b64url_decode(spoiled.encode("ascii"))


@settings(max_examples=500, deadline=None)
@given(text=st.text(ALPHABET, max_size=40))
def test_b64url_decode_accepts_only_canonical_spellings(text: str) -> None:
    """A string over the alphabet either is refused or is the one encoding of its bytes."""
    try:
        decoded = b64url_decode(text)
    except MalformedTokenError:
        return

    assert text == b64url_encode(decoded).decode("ascii")


# ---------------------------------------------------------------------------------------
# 4. the binding: canonical over order, sensitive to every value

# Values orjson can write (ints within 64 bits, finite floats) and so an issuer can bind.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
claim_names = st.text(max_size=8).filter(lambda name: name != "sjti")
claim_sets = st.dictionaries(claim_names, json_values, min_size=1, max_size=6)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _reversed_order(value: Any) -> Any:
    """The same JSON value with every object's members inserted in reverse order."""
    if isinstance(value, dict):
        return {k: _reversed_order(value[k]) for k in reversed(value)}
    if isinstance(value, list):
        return [_reversed_order(v) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(claims=claim_sets, data=st.data())
def test_sjti_does_not_depend_on_member_order(claims: dict[str, Any], data: Any) -> None:
    """Peers serialise members in any order; the same claims must bind to the same sjti."""
    shuffled = dict(data.draw(st.permutations(list(claims.items())), label="order"))

    assert compute_sjti(claims, USER_KEY) == compute_sjti(shuffled, USER_KEY)
    assert compute_sjti(claims, USER_KEY) == compute_sjti(_reversed_order(claims), USER_KEY)


@settings(max_examples=300, deadline=None)
@given(claims=claim_sets, data=st.data())
def test_sjti_changes_when_any_claim_value_changes(claims: dict[str, Any], data: Any) -> None:
    """Changing any claim (1 to 1.0, 0.0 to -0.0, a nested value) must break the binding."""
    name = data.draw(st.sampled_from(sorted(claims)), label="claim")
    old = _canonical(claims[name])
    new = data.draw(json_values.filter(lambda v: _canonical(v) != old), label="value")

    assert compute_sjti(claims, USER_KEY) != compute_sjti({**claims, name: new}, USER_KEY)


@settings(max_examples=200, deadline=None)
@given(claims=claim_sets, name=claim_names, value=json_values)
def test_sjti_changes_when_a_claim_is_added_or_dropped(
    claims: dict[str, Any], name: str, value: Any
) -> None:
    """Adding a claim (say roles) or dropping one must break the binding."""
    bound = compute_sjti(claims, USER_KEY)
    if name in claims:
        changed = {k: v for k, v in claims.items() if k != name}
    else:
        changed = {**claims, name: value}

    assert bound != compute_sjti(changed, USER_KEY)


@settings(max_examples=100, deadline=None)
@given(claims=claim_sets, presented=json_values)
def test_sjti_ignores_the_sjti_claim_itself(claims: dict[str, Any], presented: Any) -> None:
    """The sjti claim cannot be bound into itself; whatever it holds must not matter."""
    assert compute_sjti(claims, USER_KEY) == compute_sjti({**claims, "sjti": presented}, USER_KEY)


@settings(max_examples=100, deadline=None)
@given(claims=claim_sets)
def test_sjti_depends_on_the_user_key(claims: dict[str, Any]) -> None:
    """Rotating the user key must change every sjti, or revocation would not revoke."""
    other = UserKey(bytes(range(1, 33)))

    assert compute_sjti(claims, USER_KEY) != compute_sjti(claims, other)
