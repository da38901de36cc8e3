"""The two promises of DESIGN.md §2 that the blog post alone did not keep, executed as attacks.

1. Holding only the application signing key, nobody can mint a token for a user nor
   change a captured one (stretch exp, move sub, widen aud, add roles) and pass the user layer.
2. Holding only the database contents, nobody can compute a valid ``sjti``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sjti import (
    BoundaryVerifier,
    ImmatureTokenError,
    Issuer,
    Kek,
    KekRing,
    RevokedTokenError,
    SigningKey,
    UnwrapError,
    UserKey,
    UserVerifier,
    WrappedSecret,
    generate_user_key,
)
from sjti._core.binding import compute_sjti
from sjti._core.codec import b64url_decode, dumps
from sjti._core.jws import encode_header, sign_compact

from .conftest import AUDIENCE, NOW


def _resign(claims: dict[str, Any], app_key: SigningKey) -> str:
    """What an attacker holding the app key can do: sign any claims they like."""
    header = encode_header(app_key, {"typ": "at+jwt"})
    return sign_compact(header, dumps(claims), app_key).decode("ascii")


TAMPERING = {
    "stretch exp": lambda c: {**c, "exp": c["exp"] + 365 * 86_400},
    "move sub": lambda c: {**c, "sub": "bob"},
    "widen aud": lambda c: {**c, "aud": [AUDIENCE, "https://billing.example.com"]},
    "add roles": lambda c: {**c, "roles": ["admin"]},
    "change scope": lambda c: {**c, "scope": "read write admin"},
    "drop a claim": lambda c: {k: v for k, v in c.items() if k != "scope"},
    "backdate iat": lambda c: {**c, "iat": c["iat"] - 10},
    "new jti": lambda c: {**c, "jti": "replayed-" + c["jti"]},
}


@pytest.mark.parametrize("change", TAMPERING.values(), ids=TAMPERING.keys())
def test_app_key_alone_cannot_change_a_captured_token(
    change: Any,
    issuer: Issuer,
    hs_key: SigningKey,
    boundary: BoundaryVerifier,
    verifier: UserVerifier,
    user_key: UserKey,
) -> None:
    """A re-signed, edited token passes the boundary but never the user layer."""
    token = issuer.issue("alice", user_key, claims={"scope": "read"})
    forged = _resign(change(boundary.verify(token)), hs_key)
    boundary.verify(forged)  # the app key is enough to fool layer one ...
    with pytest.raises(RevokedTokenError):  # ... and never layer two
        verifier.verify(forged, user_key)


def test_app_key_alone_cannot_mint_a_token_for_a_user(
    hs_key: SigningKey, boundary: BoundaryVerifier, verifier: UserVerifier, user_key: UserKey
) -> None:
    """Minting needs the user's key: any sjti the attacker can compute is refused."""
    claims = {
        "iss": boundary.policy.issuer,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 900,
        "jti": "forged",
    }
    guesses = [UserKey.generate(), UserKey(hashlib.sha256(b"alice").digest())]
    for guess in guesses:
        forged = _resign({**claims, "sjti": compute_sjti(claims, guess)}, hs_key)
        with pytest.raises(RevokedTokenError):
            verifier.verify(forged, user_key)


def test_sjti_of_one_user_does_not_work_for_another(
    issuer: Issuer, hs_key: SigningKey, boundary: BoundaryVerifier, verifier: UserVerifier
) -> None:
    """Copying alice's sjti into a token for bob fails under bob's key."""
    alice_key, bob_key = UserKey.generate(), UserKey.generate()
    claims = boundary.verify(issuer.issue("alice", alice_key))
    forged = _resign({**claims, "sub": "bob"}, hs_key)
    with pytest.raises(RevokedTokenError):
        verifier.verify(forged, bob_key)


def test_rotating_the_user_key_revokes_every_earlier_token(
    issuer: Issuer, verifier: UserVerifier
) -> None:
    """Revocation is one new secret: all tokens before it fail, tokens after it pass."""
    old = UserKey.generate()
    tokens = [issuer.issue("alice", old) for _ in range(5)]
    new = UserKey.generate()
    for token in tokens:
        with pytest.raises(RevokedTokenError):
            verifier.verify(token, new)
    assert verifier.verify(issuer.issue("alice", new), new)["sub"] == "alice"


def test_database_dump_alone_cannot_compute_a_valid_sjti(
    issuer: Issuer, verifier: UserVerifier
) -> None:
    """A read-only DB copy holds only wrapped secrets; nothing in it works as the key."""
    ring = KekRing([Kek.generate("kek-1")])
    secret = generate_user_key()
    row = ring.wrap("alice", secret).to_str()  # this string is all the database holds
    token = issuer.issue("alice", UserKey(secret))

    wrapped = WrappedSecret.from_str(row)
    candidates = [
        wrapped.blob[:32],
        wrapped.blob[-32:],
        wrapped.blob[12:44],
        hashlib.sha256(wrapped.blob).digest(),
        hashlib.sha256(row.encode()).digest(),
    ]
    for candidate in candidates:
        with pytest.raises(RevokedTokenError):
            verifier.verify(token, UserKey(candidate))
    assert secret not in row.encode()
    assert b64url_decode(row.split(".")[-1]) != secret
    with pytest.raises(UnwrapError):  # a guessed KEK with the same id opens nothing
        KekRing([Kek.generate("kek-1")]).unwrap("alice", wrapped)


def test_wrapped_secret_moved_to_another_user_row_does_not_open(issuer: Issuer) -> None:
    """An attacker who can write rows cannot reuse alice's wrapped secret for bob."""
    ring = KekRing([Kek.generate("kek-1")])
    alice_row = ring.wrap("alice", generate_user_key())
    with pytest.raises(UnwrapError):
        ring.unwrap("bob", alice_row)


def test_kek_rotation_logs_nobody_out(issuer: Issuer, verifier: UserVerifier) -> None:
    """Re-wrapping under a new KEK keeps the user key, so existing tokens still verify."""
    old_ring = KekRing([Kek.generate("kek-1")])
    row = old_ring.wrap("alice", generate_user_key())
    token = issuer.issue("alice", UserKey(old_ring.unwrap("alice", row)))

    new_ring = KekRing([Kek.generate("kek-2"), *old_ring.keks])
    moved = new_ring.rewrap("alice", row)
    assert moved.kek_id == "kek-2"
    retired_old = KekRing([new_ring.keks[0]])  # the old KEK can now be dropped
    claims = verifier.verify(token, UserKey(retired_old.unwrap("alice", moved)))
    assert claims["sub"] == "alice"


def test_not_before_is_issued_bound_and_enforced(
    issuer: Issuer, hs_key: SigningKey, verifier: UserVerifier, user_key: UserKey
) -> None:
    """nbf set by the issuer is checked, and moving it earlier breaks the binding."""
    token = issuer.issue("alice", user_key, not_before=NOW + 60)
    with pytest.raises(ImmatureTokenError):
        verifier.verify(token, user_key)
    claims = verifier.verify(token, user_key, now=NOW + 60)
    assert claims["nbf"] == NOW + 60
    moved = _resign({**claims, "nbf": NOW}, hs_key)
    with pytest.raises(RevokedTokenError):
        verifier.verify(moved, user_key)
