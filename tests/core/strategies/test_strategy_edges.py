"""Each strategy's decisions at their exact edges, and the claim each refusal names.

The contract suite proves the strategies revoke; these pin the boundaries a refactor moves
silently: time 0 and the last representable millisecond, a 1024-character claim, the
claim named by ``MissingClaimError``/``InvalidClaimError`` (part of the error contract,
shown to operators), and the verbs of ``SessionStrategy``.
"""

from __future__ import annotations

from typing import Any

import pytest

from sjti import (
    ConfigurationError,
    InvalidClaimError,
    InvalidSignatureError,
    MissingClaimError,
    RevokedTokenError,
)
from sjti._core.strategies import (
    IAT_MS_CLAIM,
    DenylistStrategy,
    EpochStrategy,
    PlainStrategy,
    SessionKey,
    SessionStrategy,
    SjtiStrategy,
    merge_stamp,
)

MAX_MS = 253_402_300_799_999
SESSION_KEY = SessionKey(bytes(range(32)))


# ---------------------------------------------------------------------------------------
# the state key: a non-empty string claim of at most 1024 characters


@pytest.mark.parametrize("strategy", [SjtiStrategy(), EpochStrategy(), PlainStrategy()])
def test_state_key_names_the_missing_or_invalid_sub(strategy: Any) -> None:
    """The refusal names the claim it is about: sub."""
    with pytest.raises(MissingClaimError) as missing:
        strategy.state_key({})
    with pytest.raises(InvalidClaimError) as invalid:
        strategy.state_key({"sub": "x" * 1025})
    assert (missing.value.claim, invalid.value.claim) == ("sub", "sub")
    assert strategy.state_key({"sub": "x" * 1024}) == "x" * 1024


# ---------------------------------------------------------------------------------------
# denylist


def test_denylist_retains_an_entry_until_exp_from_time_zero() -> None:
    """exp = 0 is a valid NumericDate (1970); rounding up keeps a fractional exp covered."""
    strategy = DenylistStrategy()
    assert strategy.retain_until({"exp": 0}) == 0
    assert strategy.retain_until({"exp": 10.2}) == 11


@pytest.mark.parametrize(
    ("claims", "error"),
    [({}, MissingClaimError), ({"exp": -1}, InvalidClaimError), ({"exp": "1"}, InvalidClaimError)],
)
def test_denylist_retention_needs_a_usable_exp(claims: dict[str, Any], error: type) -> None:
    """Without exp the entry could never be dropped; the error names exp."""
    with pytest.raises(error) as excinfo:
        DenylistStrategy().retain_until(claims)
    assert excinfo.value.claim == "exp"


# ---------------------------------------------------------------------------------------
# epoch


@pytest.mark.parametrize("issued_ms", [0, 999, MAX_MS])
def test_epoch_accepts_iat_ms_across_the_whole_range(issued_ms: int) -> None:
    """1970 and 9999-12-31T23:59:59.999Z are both representable issue times."""
    claims = {"iat": issued_ms // 1000, IAT_MS_CLAIM: issued_ms}
    EpochStrategy().check(claims, None, now_ms=issued_ms)
    if issued_ms > 0:  # revoked one millisecond earlier: still accepted
        EpochStrategy().check(claims, issued_ms - 1, now_ms=issued_ms)


def test_epoch_refuses_a_token_issued_at_epoch_zero_after_a_revocation_at_zero() -> None:
    """A revocation at time 0 refuses a token issued at time 0 (ties fail closed)."""
    with pytest.raises(RevokedTokenError):
        EpochStrategy().check({"iat": 0, IAT_MS_CLAIM: 0}, 0, now_ms=0)


@pytest.mark.parametrize(
    ("claims", "error", "claim"),
    [
        ({"iat": 1}, MissingClaimError, IAT_MS_CLAIM),
        ({IAT_MS_CLAIM: 1000}, MissingClaimError, "iat"),
        ({"iat": 1, IAT_MS_CLAIM: -1}, InvalidClaimError, IAT_MS_CLAIM),
        ({"iat": 1, IAT_MS_CLAIM: MAX_MS + 1}, InvalidClaimError, IAT_MS_CLAIM),
        ({"iat": 2, IAT_MS_CLAIM: 1000}, InvalidClaimError, IAT_MS_CLAIM),
    ],
)
def test_epoch_refusals_name_their_claim(claims: dict[str, Any], error: type, claim: str) -> None:
    """Missing or disagreeing issue times are refused, naming the claim at fault."""
    with pytest.raises(error) as excinfo:
        EpochStrategy().check(claims, None, now_ms=5000)
    assert claim == excinfo.value.claim


@pytest.mark.parametrize("epoch", [-1, MAX_MS + 1, 1.5, "0"])
def test_a_corrupt_epoch_state_is_a_configuration_error(epoch: Any) -> None:
    """State the store should never hold: refuse loudly rather than guess."""
    with pytest.raises(ConfigurationError):
        EpochStrategy().check({"iat": 1, IAT_MS_CLAIM: 1000}, epoch, now_ms=5000)


def test_epoch_stamp_accepts_time_zero_and_the_last_millisecond() -> None:
    """The stamp's range is the check's range."""
    assert EpochStrategy().stamp({"iat": 0}, None, now_ms=0) == {IAT_MS_CLAIM: 0}
    stamped = EpochStrategy().stamp({"iat": MAX_MS // 1000}, None, now_ms=MAX_MS)
    assert stamped == {IAT_MS_CLAIM: MAX_MS}


# ---------------------------------------------------------------------------------------
# stamps


def test_merge_stamp_refuses_to_overwrite_and_to_set_registered_claims() -> None:
    """A stamp adds claims; it can never change one, nor add iss/sub/exp/..."""
    assert merge_stamp({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(ConfigurationError):
        merge_stamp({"a": 1}, {"a": 2})
    with pytest.raises(ConfigurationError):
        merge_stamp({}, {"exp": 1})


# ---------------------------------------------------------------------------------------
# session


def test_session_strategy_verbs_mint_check_and_revoke() -> None:
    """The strategy object gives the module functions' answers, ttl included."""
    strategy = SessionStrategy()
    token, record = strategy.mint(SESSION_KEY, user="alice", now_ms=1000, ttl_ms=5)
    assert (record.created_at_ms, record.expires_at_ms) == (1000, 1005)
    assert record.key == strategy.state_key(token)
    assert record.id == strategy.check_mac(token, SESSION_KEY).id
    strategy.check(token, record, SESSION_KEY, now_ms=1004)
    with pytest.raises(RevokedTokenError):
        strategy.check(token, strategy.revoke(record, now_ms=1001), SESSION_KEY, now_ms=1001)
    with pytest.raises(InvalidSignatureError):
        strategy.check_mac(token, SessionKey(bytes(32)))
