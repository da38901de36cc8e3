"""sjti.LegacyTokens: pre-sjti tokens accepted during the window, revocable per user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from sjti import (
    AlgorithmNotAllowedError,
    ConfigurationError,
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidClaimError,
    InvalidSignatureError,
    Issuer,
    LegacyTokens,
    LegacyWindowClosedError,
    MalformedTokenError,
    MissingClaimError,
    RevokedTokenError,
    UserKey,
)
from sjti.legacy import KeyState, LegacyAcceptance, is_legacy
from sjti.testing import FrozenClock

NOW = 1_800_000_000
OLD_KEY = "old-django-secret-key-long-enough-for-hs256-and-hs512-" + "x" * 16
CUTOFF = datetime.fromtimestamp(NOW + 86_400, UTC)


def simplejwt_like(user_id: Any = 7, *, iat: int = NOW - 60, **extra: Any) -> str:
    claims = {"token_type": "access", "user_id": user_id, "jti": "j1", "iat": iat}
    claims["exp"] = iat + 300
    claims.update(extra)
    return jwt.encode(claims, OLD_KEY, algorithm="HS256")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def seen() -> list[LegacyAcceptance]:
    return []


@pytest.fixture
def legacy(clock: FrozenClock, seen: list[LegacyAcceptance]) -> LegacyTokens:
    return LegacyTokens(until=CUTOFF, keys=[OLD_KEY], clock=clock, on_accept=seen.append)


def never_revoked(_user_id: str) -> KeyState:
    return KeyState(0, None)


def test_accepts_an_old_token_and_counts_it(
    legacy: LegacyTokens, seen: list[LegacyAcceptance]
) -> None:
    """In the window a valid old token passes, names its user, and is counted and reported."""
    claims = legacy.verify(simplejwt_like(), never_revoked)
    assert claims["user_id"] == 7
    assert seen == [LegacyAcceptance("7", NOW - 60, "access")]
    assert legacy.stats().accepted == 1


def test_refused_after_a_revocation_after_iat(legacy: LegacyTokens) -> None:
    """A user revoked (version 2+) at or after the token's iat: refused as revoked."""
    revoked = KeyState(2, datetime.fromtimestamp(NOW - 10, UTC))
    with pytest.raises(RevokedTokenError):
        legacy.verify(simplejwt_like(), lambda _uid: revoked)
    assert legacy.stats().refused_revoked == 1


def test_a_revocation_before_iat_does_not_refuse(legacy: LegacyTokens) -> None:
    """A token issued after the user's last revocation is still good."""
    earlier = KeyState(3, datetime.fromtimestamp(NOW - 3600, UTC))
    assert legacy.verify(simplejwt_like(), lambda _uid: earlier)["user_id"] == 7


def test_first_key_is_not_a_revocation(legacy: LegacyTokens) -> None:
    """Version 1 (the lazy first key, made after the token) refuses nothing: switching a
    user to sjti on one device does not sign their other devices out."""
    first = KeyState(1, datetime.fromtimestamp(NOW, UTC))
    assert legacy.verify(simplejwt_like(), lambda _uid: first)["user_id"] == 7


def test_unknown_user_refused(legacy: LegacyTokens) -> None:
    """No such user: refused like a revoked one."""
    with pytest.raises(RevokedTokenError):
        legacy.verify(simplejwt_like(), lambda _uid: None)


def test_after_the_cutoff_a_distinct_code(legacy: LegacyTokens, clock: FrozenClock) -> None:
    """From the cutoff on: LegacyWindowClosedError, code legacy_window_closed."""
    clock.advance(86_400)
    with pytest.raises(LegacyWindowClosedError) as excinfo:
        legacy.verify(simplejwt_like(iat=NOW + 86_000), never_revoked)
    assert excinfo.value.code == "legacy_window_closed"
    assert legacy.stats().refused_window_closed == 1
    assert not legacy.is_open()


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (jwt.encode({"user_id": 7, "iat": NOW, "exp": NOW + 60, "token_type": "access"},
                    "another-secret-key-of-the-right-length-1234567", algorithm="HS256"),
         InvalidSignatureError),
        (simplejwt_like(iat=NOW - 1000), ExpiredTokenError),
        (simplejwt_like(token_type="refresh"), InvalidClaimError),
        (jwt.encode({"token_type": "access", "iat": NOW, "exp": NOW + 60}, OLD_KEY,
                    algorithm="HS256"), MissingClaimError),
        (jwt.encode({"token_type": "access", "user_id": 7, "iat": NOW, "exp": NOW + 60},
                    OLD_KEY, algorithm="HS512"), AlgorithmNotAllowedError),
        ("not-a-jwt", MalformedTokenError),
        (simplejwt_like(iat=NOW + 600), ImmatureTokenError),
    ],
    ids=["bad-signature", "expired", "refresh-as-access", "no-user", "other-alg", "garbage",
         "issued-in-future"],
)  # fmt: skip
def test_bad_old_tokens_get_typed_errors(
    legacy: LegacyTokens, token: str, error: type[Exception]
) -> None:
    """Each failure of the old verification is sjti's class for that cause."""
    with pytest.raises(error):
        legacy.verify(token, never_revoked)


def test_alg_none_refused(legacy: LegacyTokens) -> None:
    """An unsigned token never passes the old verification."""
    token = jwt.encode({"user_id": 7, "iat": NOW, "exp": NOW + 60}, None, algorithm="none")
    with pytest.raises(AlgorithmNotAllowedError):
        legacy.verify(token, never_revoked)


def test_plain_pyjwt_tokens_with_sub(clock: FrozenClock) -> None:
    """A hand-rolled PyJWT setup: user in sub, no token_type, an issuer checked."""
    policy = LegacyTokens(
        until=CUTOFF,
        keys=["rotated-out-key-0123456789-0123456789-abcdef", OLD_KEY],
        user_id_claim="sub",
        token_type=None,
        issuer="https://old",
        clock=clock,
    )
    token = jwt.encode(
        {"sub": "alice", "iss": "https://old", "iat": NOW, "exp": NOW + 60}, OLD_KEY, "HS256"
    )
    assert policy.verify(token, never_revoked)["sub"] == "alice"
    other_issuer = jwt.encode(
        {"sub": "alice", "iss": "https://evil", "iat": NOW, "exp": NOW + 60}, OLD_KEY, "HS256"
    )
    with pytest.raises(InvalidClaimError):
        policy.verify(other_issuer, never_revoked)


def test_sjti_tokens_are_not_legacy() -> None:
    """Only tokens without sjti take the legacy path."""
    from sjti import SigningKey

    issued = Issuer(SigningKey.generate("EdDSA"), issuer="i", audience="a").issue(
        "u", UserKey.generate()
    )
    assert not is_legacy(issued)
    assert is_legacy(simplejwt_like())
    assert not is_legacy("not.a.jwt")
    assert not is_legacy("x" * 9000)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"until": datetime(2030, 1, 1), "keys": [OLD_KEY]},
        {"until": CUTOFF, "keys": []},
        {"until": CUTOFF, "keys": OLD_KEY},
        {"until": CUTOFF, "keys": [OLD_KEY], "algorithms": ["none"]},
        {"until": CUTOFF, "keys": [OLD_KEY], "leeway": 3600},
    ],
    ids=["naive-until", "no-keys", "key-not-list", "alg-none", "huge-leeway"],
)
def test_bad_policy_is_a_configuration_error(kwargs: dict[str, Any]) -> None:
    """A policy that could not be applied safely refuses to be built."""
    with pytest.raises(ConfigurationError):
        LegacyTokens(**kwargs)


def test_import_sjti_imports_neither_django_nor_pyjwt() -> None:
    """The root package stays framework-free: LegacyTokens loads PyJWT on first use only."""
    import subprocess
    import sys

    code = (
        "import sys, sjti; "
        "print(sorted(m for m in ('django', 'jwt', 'rest_framework') if m in sys.modules))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
