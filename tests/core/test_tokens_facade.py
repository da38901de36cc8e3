"""The safe facade end to end: what Issuer writes and what the two layers accept.

Each test pins one decision of ``sjti.tokens`` or of the JWS header it writes, at the
exact boundary: the lifetime cap, the per-call ttl, the size and depth limits the issuer
shares with verifiers, the claims only the issuer may set, and the three ways
``UserVerifier`` gets a user key.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sjti import (
    BoundaryVerifier,
    ClaimsPolicy,
    ConfigurationError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidSignatureError,
    Issuer,
    MissingClaimError,
    RevokedTokenError,
    SigningKey,
    UserKey,
    UserVerifier,
)
from sjti._core.codec import b64url_decode, dumps, loads_object
from sjti._core.jws import encode_header, sign_compact
from sjti.testing import FrozenClock
from tests.conftest import AUDIENCE, ISSUER, NOW

KEY = SigningKey.from_secret(bytes(range(32)), kid="app")
ALICE = UserKey(bytes(range(1, 33)))
BOB = UserKey(bytes(range(2, 34)))


def issuer(**options: Any) -> Issuer:
    return Issuer(KEY, issuer=ISSUER, audience=AUDIENCE, clock=FrozenClock(NOW), **options)


def verifier(**policy: Any) -> UserVerifier:
    rules = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, **policy)
    return UserVerifier(BoundaryVerifier(KEY, rules, clock=FrozenClock(NOW)))


def signed(claims: dict[str, Any]) -> str:
    """A token with exactly these claims, signed with the application key."""
    return sign_compact(encode_header(KEY, {"typ": "at+jwt"}), dumps(claims), KEY).decode()


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# ---------------------------------------------------------------------------------------
# max_lifetime, end to end


def test_max_lifetime_refuses_a_token_that_lives_too_long() -> None:
    """A token valid for a day is refused by a verifier that caps lifetime at an hour."""
    token = issuer(ttl=86_400).issue("alice", ALICE)
    with pytest.raises(InvalidClaimError) as excinfo:
        verifier(max_lifetime=3600).verify(token, ALICE)
    assert excinfo.value.claim == "exp"


def test_max_lifetime_accepts_a_token_at_the_cap() -> None:
    """The cap is inclusive: ttl == max_lifetime passes both layers."""
    token = issuer(ttl=3600).issue("alice", ALICE)
    assert verifier(max_lifetime=3600).verify(token, ALICE)["sub"] == "alice"


@pytest.mark.parametrize("dropped", ["iss", "aud", "sub", "jti"])
def test_max_lifetime_still_requires_the_default_claims(dropped: str) -> None:
    """Setting a lifetime cap must add iat and exp, never replace iss/aud/sub/jti."""
    claims = issuer().claims_for("alice", ALICE)
    del claims[dropped]
    with pytest.raises(MissingClaimError) as excinfo:
        verifier(max_lifetime=3600).boundary.verify(signed(claims))
    assert dropped == excinfo.value.claim


def test_a_token_that_expires_the_moment_it_is_issued_is_not_nonsense() -> None:
    """exp == iat is a zero lifetime, refused as expired by time, not as an invalid exp."""
    claims = issuer().claims_for("alice", ALICE, ttl=0, now=NOW + 10)
    boundary = verifier(leeway=30).boundary
    assert claims["iat"] == claims["exp"]
    assert boundary.verify(signed(claims))["sub"] == "alice"


# ---------------------------------------------------------------------------------------
# what the issuer writes


def test_per_call_ttl_overrides_the_default() -> None:
    """issue(ttl=60) writes exp = iat + 60, whatever the issuer's default."""
    token = issuer(ttl=900).issue("alice", ALICE, ttl=60)
    claims = verifier().verify(token, ALICE)
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 60)


def test_jti_is_128_random_bits() -> None:
    """22 base64url characters (16 bytes), fresh for every token."""
    first = issuer().claims_for("alice", ALICE)["jti"]
    second = issuer().claims_for("alice", ALICE)["jti"]
    assert (len(first), len(b64url_decode(first))) == (22, 16)
    assert first != second


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sjti"])
def test_callers_cannot_set_the_issuers_claims(name: str) -> None:
    """A caller-supplied sub or exp through claims= would be a token for someone else."""
    with pytest.raises(ConfigurationError):
        issuer().issue("alice", ALICE, claims={name: "x"})


@pytest.mark.parametrize("subject", ["", 1, None])
def test_subject_must_be_a_non_empty_string(subject: Any) -> None:
    """A token for nobody (or for the integer 1) is a caller bug."""
    with pytest.raises(ConfigurationError):
        issuer().issue(subject, ALICE)


def test_issuer_signs_claims_as_deep_as_verifiers_accept() -> None:
    """16 levels (the payload itself is level 1) is the shared limit, and it is usable."""
    token = issuer().issue("alice", ALICE, claims={"deep": nested(15)})
    assert nested(15) == verifier().verify(token, ALICE)["deep"]
    with pytest.raises(ConfigurationError):
        issuer().issue("alice", ALICE, claims={"deep": nested(16)})


def test_issuer_size_limit_is_inclusive() -> None:
    """A token exactly max_token_size bytes long is issued; one byte less is refused."""
    size = len(issuer().issue("alice", ALICE))
    assert size == len(issuer(max_token_size=size).issue("alice", ALICE))
    with pytest.raises(ConfigurationError):
        issuer(max_token_size=size - 1).issue("alice", ALICE)


def test_issued_header_names_the_key_and_the_type_in_order() -> None:
    """alg and kid come from the key, then the type: {"alg", "kid", "typ"}."""
    header = loads_object(b64url_decode(issuer().issue("alice", ALICE).split(".")[0]))
    assert header == {"alg": "HS256", "kid": "app", "typ": "at+jwt"}
    assert list(header) == ["alg", "kid", "typ"]


@pytest.mark.parametrize(
    "extra", [{"alg": "none"}, {"kid": "other"}, {"alg": "HS256", "kid": "app"}, {"kid": None}]
)
def test_encode_header_refuses_caller_supplied_alg_or_kid(extra: dict[str, Any]) -> None:
    """The header's alg and kid must come from the key: {"alg": "none"} must never get in."""
    with pytest.raises(ValueError, match="alg and kid"):
        encode_header(KEY, extra)


# ---------------------------------------------------------------------------------------
# the user layer's three entry points


def test_verify_claims_checks_only_the_user_layer() -> None:
    """Claims the boundary already verified pass with the right key, fail with another."""
    claims = verifier().boundary.verify(issuer().issue("alice", ALICE))
    assert claims is UserVerifier.verify_claims(claims, ALICE)
    with pytest.raises(RevokedTokenError):
        UserVerifier.verify_claims(claims, BOB)


def test_verify_with_looks_up_the_key_of_the_tokens_subject() -> None:
    """The lookup is asked for sub, and its key decides."""
    asked: list[str] = []

    def lookup(subject: str) -> UserKey:
        asked.append(subject)
        return {"alice": ALICE, "bob": BOB}[subject]

    token = issuer().issue("alice", ALICE)
    assert verifier().verify_with(token, lookup)["sub"] == "alice"
    assert asked == ["alice"]
    with pytest.raises(RevokedTokenError):
        verifier().verify_with(token, lambda _: BOB)


def test_verify_with_passes_now_to_the_boundary() -> None:
    """An explicit now is honoured: a token checked after its exp is expired."""
    token = issuer().issue("alice", ALICE)
    with pytest.raises(ExpiredTokenError):
        verifier().verify_with(token, lambda _: ALICE, now=NOW + 10_000)
    with pytest.raises(ExpiredTokenError):
        asyncio.run(verifier().averify_with(token, _async(ALICE), now=NOW + 10_000))


def _async(key: UserKey) -> Any:
    async def lookup(subject: str) -> UserKey:
        assert subject == "alice"
        return key

    return lookup


def test_averify_with_awaits_the_key_of_the_tokens_subject() -> None:
    """The async twin gives the same answers as verify_with."""
    token = issuer().issue("alice", ALICE)
    assert asyncio.run(verifier().averify_with(token, _async(ALICE)))["sub"] == "alice"
    with pytest.raises(RevokedTokenError):
        asyncio.run(verifier().averify_with(token, _async(BOB)))
    with pytest.raises(InvalidSignatureError):
        asyncio.run(verifier().averify_with(token[:-2] + "AA", _async(ALICE)))


@pytest.mark.parametrize("sub", [None, 1, ["alice"]])
def test_lookup_by_subject_needs_a_string_sub(sub: Any) -> None:
    """With a policy that does not require sub, a token without one cannot pick a key."""
    claims = issuer().claims_for("alice", ALICE)
    if sub is None:
        del claims["sub"]
    else:
        claims["sub"] = sub
    rules = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, required={"iss", "aud", "exp"})
    layers = UserVerifier(BoundaryVerifier(KEY, rules, clock=FrozenClock(NOW)))
    token = signed(claims)
    for verify in (
        lambda: layers.verify_with(token, lambda _: ALICE),
        lambda: asyncio.run(layers.averify_with(token, _async(ALICE))),
    ):
        with pytest.raises(InvalidClaimError) as excinfo:
            verify()
        assert excinfo.value.claim == "sub"


def test_hmac_verifying_key_checks_raw_signatures() -> None:
    """The advanced raw check: the MAC of the input verifies, any other bytes do not."""
    signature = KEY.sign(b"input")
    assert KEY.verifying_key.verify(b"input", signature)
    assert not KEY.verifying_key.verify(b"input!", signature)
    assert not KEY.verifying_key.verify(b"input", signature[:-1] + b"\x00")


def test_a_verifier_reads_each_header_once_and_keeps_at_most_64() -> None:
    """The header cache answers repeat tokens correctly and stays bounded under variation."""
    boundary = verifier().boundary
    token = issuer().issue("alice", ALICE)
    assert boundary.verify(token) == boundary.verify(token)
    sizes = []
    for n in range(70):
        header = encode_header(KEY, {"typ": "at+jwt", "n": n})
        claims = issuer().claims_for("alice", ALICE)
        boundary.verify(sign_compact(header, dumps(claims), KEY).decode())
        sizes.append(len(boundary._jws._header_cache))
    assert max(sizes) == 64
    assert boundary.verify(token)["sub"] == "alice"
