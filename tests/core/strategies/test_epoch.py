"""The epoch strategy: per-user not-before in milliseconds, and its known weaknesses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sjti import (
    ConfigurationError,
    ImmatureTokenError,
    InvalidClaimError,
    MissingClaimError,
    RevokedTokenError,
)
from sjti._core.strategies import IAT_MS_CLAIM, EpochStrategy

from .helpers import SECOND, base_claims, boundary, issue, sign, verify

STRATEGY = EpochStrategy()
S = SECOND * 1000  # the start of one second, in ms


def _decide(issued_ms: int, epoch_ms: int | None) -> bool:
    """True if a token issued at ``issued_ms`` survives the epoch (both layers)."""
    token = issue(STRATEGY, None, "alice", now_ms=issued_ms)
    try:
        verify(STRATEGY, token, epoch_ms, now_ms=max(issued_ms, epoch_ms or 0) + 1)
    except RevokedTokenError:
        return False
    return True


def test_token_minted_in_the_millisecond_of_revocation_is_refused() -> None:
    """Fail closed on a tie: issued at x.999 s, revoked at x.999 s, refused."""
    assert _decide(S + 999, S + 999) is False


def test_token_minted_earlier_in_the_same_second_is_refused() -> None:
    """The same-second race: iat equals the revocation's second, yet the token is older."""
    assert _decide(S + 200, S + 500) is False


def test_token_minted_later_in_the_same_second_is_accepted() -> None:
    """The fresh login right after 'log out everywhere' must work."""
    assert _decide(S + 700, S + 500) is True


def test_second_precision_alone_would_let_the_older_token_survive() -> None:
    """Why iat_ms exists: the naive iat < epoch_s test cannot order the two events."""
    claims = boundary().verify(issue(STRATEGY, None, "alice", now_ms=S + 200), now=SECOND)
    epoch_ms = S + 500
    naive_refuses = claims["iat"] < epoch_ms // 1000
    assert naive_refuses is False
    with pytest.raises(RevokedTokenError):
        STRATEGY.check(claims, epoch_ms, now_ms=epoch_ms)


@given(
    issued=st.integers(S - 3_000, S + 3_000),
    epoch=st.none() | st.integers(S - 3_000, S + 3_000),
)
def test_accepted_exactly_when_issued_after_the_epoch(issued: int, epoch: int | None) -> None:
    """The whole decision in one line, for every ordering of issue and revocation."""
    claims = base_claims("alice", issued)
    claims |= STRATEGY.stamp(claims, None, now_ms=issued)
    try:
        STRATEGY.check(claims, epoch, now_ms=issued)
        accepted = True
    except RevokedTokenError:
        accepted = False
    assert accepted is (epoch is None or issued > epoch)


def test_revoke_never_moves_the_epoch_backwards() -> None:
    """A revoking node with a slow clock must not un-revoke what a faster one revoked."""
    assert STRATEGY.revoke(None, now_ms=S) == S
    assert STRATEGY.revoke(S + 500, now_ms=S) == S + 500
    assert STRATEGY.revoke(S, now_ms=S + 500) == S + 500


def test_lagging_revoker_clock_lets_a_just_minted_token_survive() -> None:
    """Documented weakness: skew between issuer and revoker clocks opens a window."""
    minted_ms = S + 400  # issuer's clock
    epoch = STRATEGY.revoke(None, now_ms=minted_ms - 100)  # revoker's clock, 100 ms behind
    assert _decide(minted_ms, epoch) is True


def test_app_key_mints_a_token_from_the_future_that_outlives_revocation() -> None:
    """Documented weakness: epoch binds nothing, so a forged future iat_ms beats it."""
    future_ms = S + 86_400_000  # tomorrow
    claims = base_claims("victim", future_ms)
    forged = sign(claims | STRATEGY.stamp(claims, None, now_ms=future_ms))
    with pytest.raises(ImmatureTokenError):  # the boundary holds it back until then...
        boundary().verify(forged, now=SECOND)
    epoch = STRATEGY.revoke(None, now_ms=S + 3_600_000)  # victim logs out in an hour
    forged_claims = boundary().verify(forged, now=future_ms // 1000)
    STRATEGY.check(forged_claims, epoch, now_ms=future_ms)  # ...then it passes anyway


def test_token_without_iat_ms_is_refused() -> None:
    """A token from before the strategy (or minted lazily) must not bypass the epoch."""
    claims = base_claims("alice", S)
    with pytest.raises(MissingClaimError):
        STRATEGY.check(claims, None, now_ms=S)


@pytest.mark.parametrize(
    "iat_ms",
    [True, 1.8e12, "1800000000000", -1, 10**15, S + 1_000, S - 1],
    ids=["bool", "float", "string", "negative", "too-large", "next-second", "previous-second"],
)
def test_iat_ms_must_be_integer_and_agree_with_iat(iat_ms: Any) -> None:
    """iat_ms is trusted only as far as iat is, so the two must name the same second."""
    claims = base_claims("alice", S) | {IAT_MS_CLAIM: iat_ms}
    with pytest.raises(InvalidClaimError):
        STRATEGY.check(claims, None, now_ms=S)


def test_iat_ms_without_iat_is_refused() -> None:
    """Without iat the boundary bounded nothing about the token's age."""
    claims = base_claims("alice", S) | {IAT_MS_CLAIM: S}
    del claims["iat"]
    with pytest.raises(MissingClaimError):
        STRATEGY.check(claims, None, now_ms=S)


def test_stamp_refuses_an_iat_from_another_second() -> None:
    """The issuer's iat and iat_ms must come from one clock reading."""
    claims = base_claims("alice", S)
    with pytest.raises(ConfigurationError):
        STRATEGY.stamp(claims, None, now_ms=S + 1_000)


@pytest.mark.parametrize("epoch", ["1800000000000", 1.8e12, True])
def test_a_garbled_epoch_fails_closed(epoch: Any) -> None:
    """A store returning something that is not an epoch must not mean 'never revoked'."""
    claims = base_claims("alice", S)
    claims |= STRATEGY.stamp(claims, None, now_ms=S)
    with pytest.raises(ConfigurationError):
        STRATEGY.check(claims, epoch, now_ms=S)
