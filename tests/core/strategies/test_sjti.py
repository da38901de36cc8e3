"""The sjti strategy: the facade's binding behind the strategy interface."""

from __future__ import annotations

import pytest

from sjti import (
    InvalidClaimError,
    Issuer,
    MissingClaimError,
    RevokedTokenError,
    UserKey,
)
from sjti._core.strategies import SjtiStrategy

from .helpers import AUDIENCE, ISSUER, NOW_MS, SECOND, app_key, boundary, issue, sign, verify

STRATEGY = SjtiStrategy()


def test_tokens_from_the_issuer_facade_pass_the_strategy() -> None:
    """The strategy and sjti.Issuer must agree, or switching to it logs everyone out."""
    key = UserKey.generate()
    token = Issuer(app_key(), issuer=ISSUER, audience=AUDIENCE).issue("alice", key, now=SECOND)
    assert verify(STRATEGY, token, key, now_ms=NOW_MS)["sub"] == "alice"


def test_key_rotation_refuses_the_facade_token() -> None:
    """Revoke = new key, the same whichever API issued the token."""
    key = UserKey.generate()
    token = Issuer(app_key(), issuer=ISSUER, audience=AUDIENCE).issue("alice", key, now=SECOND)
    with pytest.raises(RevokedTokenError):
        verify(STRATEGY, token, STRATEGY.revoke(key, now_ms=NOW_MS), now_ms=NOW_MS)


@pytest.mark.parametrize(
    "edit",
    [
        {"exp": SECOND + 86_400 * 365},
        {"roles": ["admin"]},
        {"sub": "mallory"},
        {"aud": [AUDIENCE, "https://other.example.com"]},
    ],
    ids=["stretch-exp", "add-role", "move-sub", "widen-aud"],
)
def test_app_key_holder_cannot_edit_a_stolen_token(edit: dict[str, object]) -> None:
    """A leaked app key re-signs anything, but the edited claims no longer match sjti."""
    key = UserKey.generate()
    claims = verify(STRATEGY, issue(STRATEGY, key, "alice", now_ms=NOW_MS), key, now_ms=NOW_MS)
    edited = sign({**claims, **edit})
    with pytest.raises(RevokedTokenError):
        verify(STRATEGY, edited, key, now_ms=NOW_MS)


def test_app_key_holder_cannot_transplant_an_sjti() -> None:
    """Copying a valid sjti from the victim's token onto new claims does not help."""
    key = UserKey.generate()
    stolen = verify(STRATEGY, issue(STRATEGY, key, "alice", now_ms=NOW_MS), key, now_ms=NOW_MS)
    forged = issue(STRATEGY, UserKey.generate(), "alice", now_ms=NOW_MS)
    forged_claims = boundary().verify(forged, now=SECOND)
    with pytest.raises(RevokedTokenError):
        verify(STRATEGY, sign({**forged_claims, "sjti": stolen["sjti"]}), key, now_ms=NOW_MS)


def test_token_without_sjti_is_refused() -> None:
    """A token minted with the app key and no sjti must not pass as 'nothing to check'."""
    claims = boundary().verify(issue(STRATEGY, UserKey.generate(), "a", now_ms=NOW_MS), now=SECOND)
    del claims["sjti"]
    with pytest.raises(MissingClaimError):
        STRATEGY.check(claims, UserKey.generate(), now_ms=NOW_MS)


@pytest.mark.parametrize("sub", [None, "", 7])
def test_state_key_needs_a_string_sub(sub: object) -> None:
    """No sub, no user to fetch a key for: a typed error, never a lookup of 'None'."""
    claims = {} if sub is None else {"sub": sub}
    with pytest.raises(MissingClaimError if sub is None else InvalidClaimError):
        STRATEGY.state_key(claims)
