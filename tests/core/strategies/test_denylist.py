"""The denylist strategy: keyed by jti, so no other spelling of a token slips past."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sjti import (
    ConfigurationError,
    InvalidClaimError,
    Issuer,
    MissingClaimError,
    RevokedTokenError,
    UserKey,
)
from sjti._core.codec import b64url_decode, b64url_encode
from sjti._core.jws import encode_header, sign_compact
from sjti._core.strategies import DenylistStrategy

from .helpers import AUDIENCE, ISSUER, NOW_MS, SECOND, app_key, base_claims, boundary, issue

STRATEGY = DenylistStrategy()
# Order of the P-256 group (SEC 2, secp256r1 "n").
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _malleate(token: str) -> str:
    """The same JWS with the ECDSA signature (r, s) replaced by (r, n - s)."""
    signing_input, _, signature = token.rpartition(".")
    raw = b64url_decode(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = r + (P256_N - s).to_bytes(32, "big")
    return f"{signing_input}.{b64url_encode(twin).decode()}"


def _port(denied: set[str]) -> Any:
    """A denylist store in one line: the state for a jti is 'is it in the set'."""
    return lambda claims: STRATEGY.state_key(claims) in denied


def test_boundary_accepts_an_ecdsa_malleated_signature() -> None:
    """Finding: (r, n-s) verifies (RFC 7518 and OpenSSL do not demand low s), so token
    bytes are not unique per token and must never be a revocation key."""
    token = Issuer(app_key(), issuer=ISSUER, audience=AUDIENCE).issue(
        "alice", UserKey.generate(), now=SECOND
    )
    twin = _malleate(token)
    assert twin != token
    assert boundary().verify(twin, now=SECOND) == boundary().verify(token, now=SECOND)


def test_malleated_copy_of_a_denied_token_is_refused() -> None:
    """Revoking a token must revoke its malleated twin, whatever the boundary does."""
    token = issue(STRATEGY, False, "alice", now_ms=NOW_MS)
    lookup = _port({STRATEGY.state_key(boundary().verify(token, now=SECOND))})
    twin_claims = boundary().verify(_malleate(token), now=SECOND)
    with pytest.raises(RevokedTokenError):
        STRATEGY.check(twin_claims, lookup(twin_claims), now_ms=NOW_MS)


def test_re_encoded_copy_of_a_denied_token_is_refused() -> None:
    """Other JSON spacing and escapes, re-signed, are other bytes but the same jti."""
    token = issue(STRATEGY, False, "alice", now_ms=NOW_MS)
    claims = boundary().verify(token, now=SECOND)
    lookup = _port({STRATEGY.state_key(claims)})
    respelled = json.dumps(dict(reversed(claims.items())), indent=2).replace(
        '"jti"', '"\\u006a\\u0074\\u0069"'
    )
    key = app_key()
    copy = sign_compact(encode_header(key, {"typ": "at+jwt"}), respelled.encode(), key).decode()
    assert copy.split(".")[1] != token.split(".")[1]
    copy_claims = boundary().verify(copy, now=SECOND)
    assert copy_claims == claims
    with pytest.raises(RevokedTokenError):
        STRATEGY.check(copy_claims, lookup(copy_claims), now_ms=NOW_MS)


def test_other_tokens_of_the_user_stay_valid() -> None:
    """Per-token granularity: logging out one device leaves the others alone."""
    first, second = (issue(STRATEGY, False, "alice", now_ms=NOW_MS) for _ in range(2))
    lookup = _port({STRATEGY.state_key(boundary().verify(first, now=SECOND))})
    claims = boundary().verify(second, now=SECOND)
    STRATEGY.check(claims, lookup(claims), now_ms=NOW_MS)


@pytest.mark.parametrize("state", [None, 1, "no"])
def test_anything_but_false_counts_as_denied(state: Any) -> None:
    """A store answering with garbage must refuse, not wave the token through."""
    with pytest.raises(RevokedTokenError):
        STRATEGY.check(base_claims("alice", NOW_MS), state, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("jti", "error"),
    [(None, MissingClaimError), ("", InvalidClaimError), (123, InvalidClaimError)],
    ids=["missing", "empty", "int"],
)
def test_a_token_without_a_string_jti_is_refused(jti: Any, error: type[Exception]) -> None:
    """No jti means no key to deny it by: such a token could never be revoked."""
    claims = base_claims("alice", NOW_MS)
    if jti is None:
        del claims["jti"]
    else:
        claims["jti"] = jti
    with pytest.raises(error):
        STRATEGY.state_key(claims)
    with pytest.raises(error):
        STRATEGY.check(claims, False, now_ms=NOW_MS)
    with pytest.raises(ConfigurationError):
        STRATEGY.stamp(claims, False, now_ms=NOW_MS)


def test_entries_are_kept_until_the_token_expires() -> None:
    """Dropping an entry before exp would resurrect the token; after exp it is dead weight."""
    claims = base_claims("alice", NOW_MS)
    assert STRATEGY.retain_until(claims) == claims["exp"]
    assert STRATEGY.retain_until({"exp": 1000.2}) == 1001


@pytest.mark.parametrize("exp", [None, "1000", -1, float("inf"), True])
def test_retain_until_needs_a_usable_exp(exp: Any) -> None:
    """An entry with no end must be a typed error, not a row kept forever by accident."""
    with pytest.raises(MissingClaimError if exp is None else InvalidClaimError):
        STRATEGY.retain_until({} if exp is None else {"exp": exp})
