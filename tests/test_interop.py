"""Differential tests against PyJWT and joserfc: same keys, same tokens, same verdicts.

sjti tokens are plain RFC 7519 JWTs, so any JOSE library must decode them to the same
claims; and tokens those libraries sign must pass both sjti layers when (and only when)
they carry an ``sjti`` made with the user's key.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwk as jose_jwk
from joserfc import jwt as jose_jwt
from joserfc.jwt import JWTClaimsRegistry

import sjti
from sjti import (
    BoundaryVerifier,
    ClaimsPolicy,
    InvalidSignatureError,
    Issuer,
    KeySet,
    RevokedTokenError,
    SigningKey,
    UserKey,
    UserVerifier,
    VerifyingKey,
)
from sjti._core.binding import compute_sjti
from sjti._core.codec import b64url_decode
from sjti.testing import FrozenClock

from .conftest import AUDIENCE, ISSUER, NOW, key_for

# joserfc implements RFC 9864 and warns that the fully specified "Ed25519" replaces
# "EdDSA"; sjti (like PyJWT) still signs with "EdDSA", so the warning is expected here.
_JOSERFC_EDDSA_WARNING = pytest.mark.filterwarnings(
    "ignore:EdDSA is deprecated:joserfc.errors.SecurityWarning"
)


def _alg_params(algs: tuple[str, ...]) -> list[Any]:
    return [
        pytest.param(alg, marks=_JOSERFC_EDDSA_WARNING) if alg == "EdDSA" else alg for alg in algs
    ]


INTEROP_ALGS = ("HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA")
ASYMMETRIC_ALGS = tuple(a for a in INTEROP_ALGS if not a.startswith("HS"))
ALGS = _alg_params(INTEROP_ALGS)
ASYM_ALGS = _alg_params(ASYMMETRIC_ALGS)

# Claims of every JSON kind, so a codec difference anywhere would show.
EXTRA_CLAIMS: dict[str, Any] = {
    "scope": "read write",
    "roles": ["reader", "writer"],
    "n": 42,
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "nested": {"b": [1, {"c": "d"}], "a": {}},
}
UNICODE_CLAIMS: dict[str, Any] = {
    "name": "Zoë Ångström",
    "城市": "東京",
    "emoji": "party 🎉",
    "nested": {"ü": ["ß", "\u2028", "\x7f", "tab\there"]},
}


def _verification_jwk(key: SigningKey) -> dict[str, Any]:
    """What a peer needs to verify: the secret for HMAC, the public JWK otherwise."""
    if key.verifying_key.is_symmetric:
        return key.export_private_jwk()
    return key.to_public_jwk()


def _pyjwt_signing_key(key: SigningKey) -> Any:
    return jwt.PyJWK(key.export_private_jwk()).key


def _payload_json(token: str) -> bytes:
    return b64url_decode(token.split(".")[1])


@cache
def _foreign_key(alg: str) -> SigningKey:
    """A second key for ``alg`` (2048-bit RSA: faster to make, still accepted)."""
    if alg.startswith(("RS", "PS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return SigningKey.from_pem(pem, alg=alg)
    return SigningKey.generate(alg)


def _peer_claims(user_key: UserKey, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """RFC 9068 claims at NOW, bound to ``user_key`` the way sjti's Issuer binds them."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "jti": "a1b2c3d4e5f6",
        "iat": NOW,
        "exp": NOW + 600,
        **(extra or {}),
    }
    claims["sjti"] = compute_sjti(claims, user_key)
    return claims


def _pyjwt_encode(claims: dict[str, Any], key: SigningKey, *, kid: str) -> str:
    return jwt.encode(
        claims,
        _pyjwt_signing_key(key),
        algorithm=key.alg,
        headers={"kid": kid, "typ": "at+jwt"},
    )


def _joserfc_encode(claims: dict[str, Any], key: SigningKey) -> str:
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    signing = jose_jwk.import_key(key.export_private_jwk())
    return jose_jwt.encode(header, dict(claims), signing, algorithms=[key.alg])


PEER_ENCODERS = {
    "pyjwt": lambda claims, key: _pyjwt_encode(claims, key, kid=key.kid),
    "joserfc": _joserfc_encode,
}


def _layers(
    key: SigningKey | KeySet, policy: ClaimsPolicy
) -> tuple[BoundaryVerifier, UserVerifier]:
    boundary = BoundaryVerifier(key, policy, clock=FrozenClock(NOW))
    return boundary, UserVerifier(boundary)


# ---------------------------------------------------------------------------------------
# 1. sjti issues, peers decode


@pytest.mark.parametrize("alg", ALGS)
def test_peers_decode_sjti_tokens_to_identical_claims(alg: str, user_key: UserKey) -> None:
    """Any RFC 7519 library must read exactly the claims sjti signed, sjti claim included."""
    key = key_for(alg)
    token = Issuer(key, issuer=ISSUER, audience=AUDIENCE, clock=sjti.system_clock).issue(
        "user-1", user_key, claims=EXTRA_CLAIMS | UNICODE_CLAIMS
    )
    policy = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE)
    ours = UserVerifier(BoundaryVerifier(key, policy)).verify(token, user_key)

    by_pyjwt = jwt.decode(
        token,
        jwt.PyJWK(_verification_jwk(key)).key,
        algorithms=[alg],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    by_joserfc = jose_jwt.decode(
        token, jose_jwk.import_key(_verification_jwk(key)), algorithms=[alg]
    )
    JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True, "value": "user-1"},
        jti={"essential": True},
        iat={"essential": True},
        exp={"essential": True},
        sjti={"essential": True},
    ).validate(by_joserfc.claims)

    assert ours == by_pyjwt
    assert ours == by_joserfc.claims
    assert ours["sjti"] == compute_sjti(by_pyjwt, user_key)


@pytest.mark.parametrize("alg", ALGS)
def test_peers_see_sjti_header_alg_kid_typ(alg: str, user_key: UserKey) -> None:
    """Gateways route on alg/kid/typ: peers must read the header sjti wrote."""
    key = key_for(alg)
    token = Issuer(key, issuer=ISSUER, audience=AUDIENCE, clock=sjti.system_clock).issue(
        "user-1", user_key
    )
    expected = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    decoded = jose_jwt.decode(token, jose_jwk.import_key(_verification_jwk(key)), algorithms=[alg])

    assert expected == jwt.get_unverified_header(token)
    assert expected == decoded.header


# ---------------------------------------------------------------------------------------
# 2. peers issue, sjti verifies in both layers


@pytest.mark.parametrize("peer", sorted(PEER_ENCODERS))
@pytest.mark.parametrize("alg", ALGS)
def test_peer_signed_tokens_pass_both_sjti_layers(
    alg: str, peer: str, user_key: UserKey, policy: ClaimsPolicy
) -> None:
    """A token any JOSE library signs with our key and binds with the user key is valid."""
    key = key_for(alg)
    claims = _peer_claims(user_key, EXTRA_CLAIMS)
    token = PEER_ENCODERS[peer](claims, key)
    boundary, verifier = _layers(key, policy)

    assert claims == boundary.verify(token)
    assert claims == verifier.verify(token, user_key)


@pytest.mark.parametrize("alg", ASYM_ALGS)
def test_peer_signed_tokens_pass_with_only_the_published_jwk(
    alg: str, user_key: UserKey, policy: ClaimsPolicy
) -> None:
    """A boundary service holds only the public JWK; peer tokens must still verify there."""
    key = key_for(alg)
    claims = _peer_claims(user_key)
    token = _pyjwt_encode(claims, key, kid=key.kid)
    public = KeySet(verify_only=[VerifyingKey.from_jwk(key.to_public_jwk())])
    _, verifier = _layers(public, policy)

    assert claims == verifier.verify(token, user_key)


@pytest.mark.parametrize("peer", sorted(PEER_ENCODERS))
@pytest.mark.parametrize("alg", ["HS256", pytest.param("EdDSA", marks=_JOSERFC_EDDSA_WARNING)])
def test_peer_tokens_with_unicode_claims_pass_both_layers(
    alg: str, peer: str, user_key: UserKey, policy: ClaimsPolicy
) -> None:
    """Non-ASCII claims (escaped by PyJWT, raw UTF-8 by joserfc) must bind to the same sjti."""
    key = key_for(alg)
    claims = _peer_claims(user_key, UNICODE_CLAIMS)
    token = PEER_ENCODERS[peer](claims, key)
    _, verifier = _layers(key, policy)

    assert claims == verifier.verify(token, user_key)
    if peer == "pyjwt":  # the escaped spelling really reached the parser
        assert b"\\u00eb" in _payload_json(token)
        assert b"\\ud83c\\udf89" in _payload_json(token)


def test_sjti_of_unicode_claims_matches_across_libraries(
    issuer: Issuer, user_key: UserKey, verifier: UserVerifier
) -> None:
    """Claims sjti bound must re-bind to the same sjti after a trip through PyJWT's codec."""
    claims = issuer.claims_for("user-1", user_key, claims=UNICODE_CLAIMS)
    sjti_token = issuer.issue("user-1", user_key, claims=UNICODE_CLAIMS)
    pyjwt_token = _pyjwt_encode(claims, issuer.key, kid=issuer.key.kid)
    # NOW lies in the future of the real clock, which PyJWT always uses.
    in_the_future = {"verify_exp": False, "verify_iat": False}
    read_back = [
        jwt.decode(
            token,
            _pyjwt_signing_key(issuer.key),
            algorithms=["HS256"],
            audience=AUDIENCE,
            options=in_the_future,
        )
        for token in (sjti_token, pyjwt_token)
    ]

    assert claims == verifier.verify(pyjwt_token, user_key)
    assert claims == read_back[1]
    assert [c["sjti"] for c in read_back] == [compute_sjti(c, user_key) for c in read_back]


# ---------------------------------------------------------------------------------------
# 3. the app key alone cannot forge, shown with a peer library


@pytest.mark.parametrize("alg", INTEROP_ALGS)
def test_peer_token_signed_with_another_key_is_refused_at_the_boundary(
    alg: str, user_key: UserKey, policy: ClaimsPolicy
) -> None:
    """A token that names our kid but is signed with another key must not pass anything."""
    key = key_for(alg)
    forged = _pyjwt_encode(_peer_claims(user_key), _foreign_key(alg), kid=key.kid)
    boundary, verifier = _layers(key, policy)

    with pytest.raises(InvalidSignatureError):
        boundary.verify(forged)
    with pytest.raises(InvalidSignatureError):
        verifier.verify(forged, user_key)


TAMPERS = {
    "exp": lambda c: {**c, "exp": c["exp"] + 86_400},
    "sub": lambda c: {**c, "sub": "admin"},
    "aud": lambda c: {**c, "aud": [AUDIENCE, "https://other.example.com"]},
    "roles": lambda c: {**c, "roles": ["admin"]},
    "iat": lambda c: {**c, "iat": c["iat"] - 60},
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
@pytest.mark.parametrize("alg", INTEROP_ALGS)
def test_claims_resigned_with_app_key_alone_are_revoked_at_user_layer(
    alg: str, tamper: str, user_key: UserKey, policy: ClaimsPolicy
) -> None:
    """Whoever holds only the app key passes the boundary but cannot forge the user layer."""
    key = key_for(alg)
    genuine = Issuer(key, issuer=ISSUER, audience=AUDIENCE, clock=FrozenClock(NOW)).issue(
        "user-1", user_key
    )
    boundary, verifier = _layers(key, policy)
    tampered = TAMPERS[tamper](boundary.verify(genuine))
    forged = _pyjwt_encode(tampered, key, kid=key.kid)

    assert tampered == boundary.verify(forged)
    with pytest.raises(RevokedTokenError):
        verifier.verify(forged, user_key)


# ---------------------------------------------------------------------------------------
# 4. JWKS in both directions


@pytest.mark.parametrize("alg", ASYM_ALGS)
def test_sjti_jwks_loads_in_peers_and_verifies_sjti_tokens(alg: str, user_key: UserKey) -> None:
    """Resource servers using PyJWT or joserfc must be able to consume our published JWKS."""
    key = key_for(alg)
    other = key_for("ES256" if alg != "ES256" else "EdDSA")
    jwks = KeySet(active=key, verify_only=[other]).to_jwks()
    token = Issuer(key, issuer=ISSUER, audience=AUDIENCE, clock=sjti.system_clock).issue(
        "user-1", user_key
    )

    pyjwk = jwt.PyJWKSet.from_dict(jwks)[key.kid]
    by_pyjwt = jwt.decode(token, pyjwk.key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)
    jose_keys = jose_jwk.KeySet.import_key_set(jwks)
    by_joserfc = jose_jwt.decode(token, jose_keys, algorithms=[alg])

    assert {key.kid, other.kid} == {k["kid"] for k in jwks["keys"]}
    assert alg == pyjwk.algorithm_name
    assert by_pyjwt == by_joserfc.claims
    assert by_pyjwt["sjti"] == compute_sjti(by_pyjwt, user_key)


def test_sjti_jwks_never_carries_hmac_secrets() -> None:
    """Publishing the JWKS must never leak a shared secret to peers."""
    jwks = KeySet(active=key_for("HS256"), verify_only=[key_for("EdDSA")]).to_jwks()

    assert [key_for("EdDSA").kid] == [k["kid"] for k in jwks["keys"]]
    assert all("k" not in k and "d" not in k for k in jwks["keys"])


JOSERFC_KEYS = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}


@pytest.mark.parametrize("alg", _alg_params(tuple(JOSERFC_KEYS)))
def test_joserfc_jwks_loads_in_sjti_and_verifies_joserfc_tokens(
    alg: str, user_key: UserKey, policy: ClaimsPolicy
) -> None:
    """Keys published by a joserfc issuer must be usable by an sjti boundary as they are."""
    kty, crv = JOSERFC_KEYS[alg]
    jose_keys = jose_jwk.KeySet.generate_key_set(kty, crv, count=2)
    jwks = jose_keys.as_dict(private=False)
    signer = jose_keys.keys[1]
    claims = _peer_claims(user_key)
    token = jose_jwt.encode(
        {"alg": alg, "kid": signer.kid, "typ": "at+jwt"}, dict(claims), signer, algorithms=[alg]
    )
    keys = KeySet.from_jwks(json.dumps(jwks))
    _, verifier = _layers(keys, policy)

    assert [k["kid"] for k in jwks["keys"]] == [k.kid for k in keys]
    assert claims == verifier.verify(token, user_key)


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_jwk_thumbprint_kid_agrees_with_joserfc(alg: str) -> None:
    """Default kids are RFC 7638 thumbprints, so both libraries must name a key alike."""
    public = key_for(alg).to_public_jwk()
    anonymous = {k: v for k, v in public.items() if k != "kid"}

    assert public["kid"] == jose_jwk.import_key(anonymous).thumbprint()
    assert public["kid"] == VerifyingKey.from_jwk(anonymous).kid
