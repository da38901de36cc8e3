"""Every JWT strategy behind the one interface: issue, check, revoke, and the registry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sjti import ConfigurationError, RevokedTokenError
from sjti._core.strategies import (
    DEFAULT_STRATEGY,
    JWT_STRATEGIES,
    REGISTERED_CLAIMS,
    STRATEGIES,
    DenylistStrategy,
    EpochStrategy,
    PlainStrategy,
    SessionStrategy,
    SjtiStrategy,
    Strategy,
    get_strategy,
    merge_stamp,
)

from .helpers import NOW_MS, attacker_guess, base_claims, fresh_state, issue, verify

REVOCABLE = ("sjti", "epoch", "denylist")
LATER_MS = NOW_MS + 5_000


def _strategy(name: str) -> Strategy[Any]:
    return JWT_STRATEGIES[name]


@pytest.mark.parametrize("name", sorted(JWT_STRATEGIES))
def test_issued_token_is_accepted(name: str) -> None:
    """The happy path: a token stamped by the strategy passes both layers."""
    strategy, state = _strategy(name), fresh_state(name)
    token = issue(strategy, state, "alice", now_ms=NOW_MS)
    assert verify(strategy, token, state, now_ms=LATER_MS)["sub"] == "alice"


@pytest.mark.parametrize("name", REVOCABLE)
def test_token_is_refused_after_revocation(name: str) -> None:
    """Revocation is the point: the state after revoke() refuses the earlier token."""
    strategy, state = _strategy(name), fresh_state(name)
    token = issue(strategy, state, "alice", now_ms=NOW_MS)
    revoked = strategy.revoke(state, now_ms=LATER_MS)
    with pytest.raises(RevokedTokenError):
        verify(strategy, token, revoked, now_ms=LATER_MS)


@pytest.mark.parametrize("name", ["sjti", "epoch"])
def test_token_issued_after_revocation_is_accepted(name: str) -> None:
    """A user-level revocation must not lock the user out of their next login."""
    strategy = _strategy(name)
    revoked = strategy.revoke(fresh_state(name), now_ms=NOW_MS)
    token = issue(strategy, revoked, "alice", now_ms=NOW_MS + 1)
    assert verify(strategy, token, revoked, now_ms=LATER_MS)["sub"] == "alice"


def test_plain_cannot_revoke() -> None:
    """The baseline is honest: after 'revocation' a plain token still works until exp."""
    strategy = PlainStrategy()
    token = issue(strategy, None, "alice", now_ms=NOW_MS)
    strategy.revoke(None, now_ms=LATER_MS)
    assert verify(strategy, token, None, now_ms=LATER_MS)["sub"] == "alice"


# What an attacker holding only the application signing key gets, executed per strategy:
# mint a token for a victim they never logged in as, stamping whatever they can compute.
APP_KEY_MINT_ACCEPTED = {"sjti": False, "epoch": True, "denylist": True, "plain": True}


@pytest.mark.parametrize("name", sorted(APP_KEY_MINT_ACCEPTED))
def test_app_key_alone_mints_a_token_for_any_user(name: str) -> None:
    """The comparison's app-key-leak cell: only sjti refuses a token minted with it."""
    strategy = _strategy(name)
    # The victim logged out everywhere a minute ago. The denylist holds their old jtis, but
    # the port looks up the forged token's fresh jti, which it has never seen.
    revoked = strategy.revoke(fresh_state(name), now_ms=NOW_MS - 60_000)
    victim_state = fresh_state(name) if name == "denylist" else revoked
    forged = issue(strategy, attacker_guess(name), "victim", now_ms=NOW_MS)
    try:
        verify(strategy, forged, victim_state, now_ms=LATER_MS)
        accepted = True
    except RevokedTokenError:
        accepted = False
    assert accepted is APP_KEY_MINT_ACCEPTED[name]


@pytest.mark.parametrize("name", sorted(JWT_STRATEGIES))
def test_stamp_only_adds_unregistered_claims(name: str) -> None:
    """A stamp must never change who the token is for or how long it lives."""
    strategy = _strategy(name)
    claims = base_claims("alice", NOW_MS)
    before = copy.deepcopy(claims)
    added = strategy.stamp(claims, fresh_state(name), now_ms=NOW_MS)
    assert claims == before
    assert added.keys().isdisjoint(claims.keys() | REGISTERED_CLAIMS)


@pytest.mark.parametrize("name", ["sjti", "epoch"])
def test_stamp_refuses_claims_already_stamped(name: str) -> None:
    """Stamping twice would silently replace a binding; it is a bug, so it is refused."""
    strategy, state = _strategy(name), fresh_state(name)
    claims = base_claims("alice", NOW_MS)
    stamped = merge_stamp(claims, strategy.stamp(claims, state, now_ms=NOW_MS))
    with pytest.raises(ConfigurationError):
        strategy.stamp(stamped, state, now_ms=NOW_MS)


def test_merge_stamp_refuses_to_overwrite() -> None:
    """The issuer-side guard: no stamp can set sub, exp or any claim already present."""
    claims = base_claims("alice", NOW_MS)
    with pytest.raises(ConfigurationError):
        merge_stamp(claims, {"exp": claims["exp"] + 3600})
    with pytest.raises(ConfigurationError):
        merge_stamp({"sub": "a"}, {"nbf": 0})


@pytest.mark.parametrize(
    ("name", "claim"), [("sjti", "sub"), ("epoch", "sub"), ("denylist", "jti"), ("plain", "sub")]
)
def test_state_key_names_the_state_to_fetch(name: str, claim: str) -> None:
    """The port fetches by this key: per user for sjti/epoch, per token for denylist."""
    claims = base_claims("alice", NOW_MS)
    assert _strategy(name).state_key(claims) == claims[claim]


def test_only_plain_needs_no_state() -> None:
    """Round trips per request: plain fetches nothing, every other strategy one state."""
    assert {n for n, s in STRATEGIES.items() if not s.needs_state} == {"plain"}


def test_registry_names_every_strategy_by_its_own_name() -> None:
    """`sjti compare` and configuration both look strategies up by these names."""
    assert sorted(STRATEGIES) == ["denylist", "epoch", "plain", "session", "sjti"]
    assert all(s.name == n for n, s in STRATEGIES.items())
    assert DEFAULT_STRATEGY == "sjti"


def test_get_strategy_returns_the_registered_instance() -> None:
    """Lookups by name give the right class, typed per name."""
    assert isinstance(get_strategy("sjti"), SjtiStrategy)
    assert isinstance(get_strategy("epoch"), EpochStrategy)
    assert isinstance(get_strategy("denylist"), DenylistStrategy)
    assert isinstance(get_strategy("session"), SessionStrategy)
    assert isinstance(get_strategy("plain"), PlainStrategy)


@pytest.mark.parametrize("name", ["", "SJTI", "jwt", "sjti ", "x" * 500, None])
def test_unknown_strategy_is_a_configuration_error(name: Any) -> None:
    """A typo in configuration must fail at start-up, not fall back to no revocation."""
    with pytest.raises(ConfigurationError):
        get_strategy(name)


def test_registry_is_read_only() -> None:
    """Nobody swaps 'sjti' for 'plain' at run time by mutating a global."""
    with pytest.raises(TypeError):
        STRATEGIES["sjti"] = PlainStrategy()  # type: ignore[index]
