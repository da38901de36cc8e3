"""The pack's forgeries are the real attacks, for every kind of application key."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from functools import cache

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from sjti import (
    AlgorithmNotAllowedError,
    BoundaryVerifier,
    ClaimsPolicy,
    ConfigurationError,
    InvalidKeyError,
    InvalidSignatureError,
    Issuer,
    KeySet,
    SigningKey,
    UserKey,
    UserVerifier,
    VerifyingKey,
)
from sjti._core.codec import b64url_decode
from sjti.cache import CachedKeys
from sjti.stores import MemorySecretStore
from sjti.testing import ATTACKS, AttackCase, FrozenClock, Kit, UserFactory, _forge


@cache
def key_for(alg: str) -> SigningKey:
    """One key per algorithm for the module (RSA generation is slow)."""
    return SigningKey.generate(alg)


ASYMMETRIC = ("RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA")


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_the_public_key_secrets_are_the_app_keys_public_key(alg: str) -> None:
    """The PEM the confusion attack uses is the key a JWKS publishes, byte for byte."""
    key = key_for(alg).verifying_key
    pem, pem_no_newline, der, jwk_json = _forge.public_key_secrets(key)
    assert VerifyingKey.from_pem(pem, alg=alg, kid=key.kid).to_jwk() == key.to_jwk()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert pem_no_newline == pem[:-1]
    assert (
        serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == pem
    )
    assert orjson.loads(jwk_json) == key.to_jwk()


def test_a_symmetric_key_has_no_public_secret() -> None:
    """HMAC keys are never exported, so the case skips rather than forging nonsense."""
    with pytest.raises(InvalidKeyError):
        _forge.public_key_secrets(key_for("HS256").verifying_key)


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_the_confused_token_is_a_valid_hmac_under_the_pem_and_refused_by_sjti(
    alg: str, sjti_clock: FrozenClock
) -> None:
    """A verifier taking alg from the header would accept it; sjti pins the algorithm."""
    app_key = key_for(alg)
    policy = ClaimsPolicy(issuer="https://auth", audience="api")
    issuer = Issuer(app_key, issuer="https://auth", audience="api", clock=sjti_clock)
    token = issuer.issue("alice", UserKey.generate())
    pem = _forge.public_key_secrets(app_key.verifying_key)[0]
    forged = _forge.hmac_with_public_key(_forge.split(token), pem)
    signing_input, _, signature = forged.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert b64url_decode(signature) == expected
    assert _forge.split(forged).header["alg"] == "HS256"
    assert _forge.split(forged).header["kid"] == app_key.kid
    with pytest.raises(AlgorithmNotAllowedError):
        BoundaryVerifier(app_key, policy, clock=sjti_clock).verify(forged)


def test_a_tampered_signature_differs_in_one_bit_and_stays_canonical(
    sjti_users: UserFactory, sjti_boundary: BoundaryVerifier
) -> None:
    """The refusal must be for the signature, not for a broken encoding."""
    token = sjti_users.token(sjti_users.create())
    tampered = _forge.tamper_signature(token)
    original, changed = (b64url_decode(t.rpartition(".")[2]) for t in (token, tampered))
    flipped = [a ^ b for a, b in zip(original, changed, strict=True) if a != b]
    assert flipped == [1]
    with pytest.raises(InvalidSignatureError):
        sjti_boundary.verify(tampered)


@pytest.fixture(params=["ES256", "RS256", "HS256"])
def sjti_algorithm(request: pytest.FixtureRequest) -> str:
    """Overrides the plugin's EdDSA: the pack on the other key families."""
    return str(request.param)


def test_the_pack_passes_a_correct_verifier_with_every_key_family(
    sjti_attack: AttackCase, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """ECDSA signatures are randomised and RSA keys large: the controls still verify and
    every attack is still refused (the confusion case skips for HS256)."""
    keys = CachedKeys(sjti_store)

    def send(token: str) -> int:
        sjti_verifier.verify_with(token, keys.get)
        return 200

    sjti_attack.check(send)


def test_a_key_set_holding_the_attackers_kid_is_refused(sjti_kit: Kit) -> None:
    """If the app trusted the pack's attacker key, unknown-kid would test nothing: say so."""
    attacker = SigningKey.generate(sjti_kit.issuer.key.alg, kid="sjti-testing-attacker")
    kit = dataclasses.replace(sjti_kit, keys=KeySet(sjti_kit.issuer.key, [attacker]))
    unknown_kid = next(a for a in ATTACKS if a.name == "unknown-kid")
    with pytest.raises(ConfigurationError):
        AttackCase(unknown_kid, kit).check(lambda token: 200)
