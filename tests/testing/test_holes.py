"""Each case finds its hole: an endpoint missing exactly one check fails exactly that case.

This proves the forgeries are real (a broken forgery would be refused for the wrong
reason and the case would pass vacuously) and that the names point at the right check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sjti import BoundaryVerifier, Claims, ClaimsPolicy, UserKey, UserVerifier
from sjti._core.binding import SJTI_CLAIM, check_sjti
from sjti._core.claims import check_claims
from sjti._core.codec import b64url_decode, loads_object
from sjti._core.jws import CompactVerifier
from sjti.cache import CachedKeys, KeyCache
from sjti.stores import MemorySecretStore
from sjti.testing import ATTACKS, AttackAcceptedError, AttackCase, FrozenClock, Kit

SIGNATURE_CASES = ("alg-none", "hs256-with-public-key", "unknown-kid", "tampered-signature")


def case(name: str, kit: Kit) -> AttackCase:
    return AttackCase(next(a for a in ATTACKS if a.name == name), kit)


def as_status(check: Callable[[str], object]) -> Callable[[str], int]:
    def send(token: str) -> int:
        try:
            check(token)
        except Exception:
            return 401
        return 200

    return send


def unverified_claims(token: str) -> Claims:
    return loads_object(b64url_decode(token.split(".")[1]))


def lax(claims: Claims, skip: str, policy: ClaimsPolicy, now: int) -> Claims:
    """The claims as an endpoint that does not check ``skip`` sees them."""
    relaxed: dict[str, Any] = dict(claims)
    if skip == "exp":
        relaxed["exp"] = now + 60
    elif skip == "nbf":
        relaxed.pop("nbf", None)
    elif skip == "iss":
        relaxed["iss"] = policy.issuer
    elif skip == "aud":
        relaxed["aud"] = policy.audience
    return relaxed


@pytest.mark.parametrize(
    ("skip", "hole"),
    [
        ("exp", "expired"),
        ("nbf", "not-yet-valid"),
        ("iss", "wrong-issuer"),
        ("aud", "wrong-audience"),
    ],
)
def test_an_endpoint_skipping_one_claim_check_fails_that_case_only(
    skip: str,
    hole: str,
    sjti_kit: Kit,
    sjti_boundary: BoundaryVerifier,
    sjti_store: MemorySecretStore,
    sjti_clock: FrozenClock,
) -> None:
    """Signature and sjti checked, one claim not: only the case about that claim fails."""
    policy, signature = sjti_boundary.policy, CompactVerifier(sjti_boundary.keys)

    def check(token: str) -> None:
        claims = loads_object(signature.verify(token)[1])
        check_claims(lax(claims, skip, policy, sjti_clock()), policy, now=sjti_clock())
        check_sjti(claims, sjti_store.load(claims["sub"]) or UserKey.generate())

    send = as_status(lambda token: check(token))
    with pytest.raises(AttackAcceptedError) as excinfo:
        case(hole, sjti_kit).check(send)
    assert excinfo.value.attack == hole
    for attack in ATTACKS:
        if attack.name != hole and attack.name not in ("revoked-device", "good-token"):
            AttackCase(attack, sjti_kit).check(send)


def test_an_endpoint_that_skips_the_signature_fails_every_signature_case(
    sjti_attack: AttackCase,
    sjti_policy: ClaimsPolicy,
    sjti_store: MemorySecretStore,
    sjti_clock: FrozenClock,
) -> None:
    """Claims and sjti checked on an unverified payload: every signature case is accepted."""

    def check(token: str) -> None:
        claims = unverified_claims(token)
        check_claims(claims, sjti_policy, now=sjti_clock())
        check_sjti(claims, sjti_store.load(claims["sub"]) or UserKey.generate())

    if sjti_attack.name in SIGNATURE_CASES:
        with pytest.raises(AttackAcceptedError):
            sjti_attack.check(as_status(check))
    else:
        sjti_attack.check(as_status(check))


def test_an_endpoint_checking_sjti_only_when_present_fails_the_without_sjti_case(
    sjti_kit: Kit, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """``if "sjti" in claims`` is the classic optional-check bug; the pack names it."""

    def check(token: str) -> None:
        claims = sjti_verifier.boundary.verify(token)
        if SJTI_CLAIM in claims:
            check_sjti(claims, sjti_store.load(claims["sub"]) or UserKey.generate())

    with pytest.raises(AttackAcceptedError):
        case("app-key-without-sjti", sjti_kit).check(as_status(check))
    case("revoked-user", sjti_kit).check(as_status(check))


def test_an_endpoint_that_lets_unknown_users_in_fails_the_deleted_user_case(
    sjti_kit: Kit, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """No row, no check: a deleted user's token must not fall through to "accepted"."""

    def check(token: str) -> None:
        claims = sjti_verifier.boundary.verify(token)
        key = sjti_store.load(claims["sub"])
        if key is not None:
            check_sjti(claims, key)

    with pytest.raises(AttackAcceptedError):
        case("deleted-user", sjti_kit).check(as_status(check))
    case("revoked-user", sjti_kit).check(as_status(check))


def test_a_cache_nobody_invalidates_fails_the_revoked_user_case(
    sjti_kit: Kit, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """A trusted cache without a listener keeps the old key: revocation never arrives."""
    stale = CachedKeys(sjti_store, cache=KeyCache(trusted=True))
    send = as_status(lambda token: sjti_verifier.verify_with(token, stale.get))
    with pytest.raises(AttackAcceptedError):
        case("revoked-user", sjti_kit).check(send)
