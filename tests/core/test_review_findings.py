"""Regression tests for the findings of the first security review (each was reproduced)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from sjti import (
    BoundaryVerifier,
    ClaimsPolicy,
    ConfigurationError,
    InvalidKeyError,
    Issuer,
    KeySet,
    SigningKey,
    UserKey,
    UserVerifier,
    VerifyingKey,
)
from tests.conftest import AUDIENCE, ISSUER, NOW

P = 2**255 - 19
ORDER_8 = (
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _encodings() -> dict[str, bytes]:
    """Every small-order point (both x signs) and non-canonical encodings (y >= p)."""
    ys = {"identity": 1, "order-2": P - 1, "order-4": 0}
    ys.update(
        {f"order-8-{i}": int.from_bytes(bytes.fromhex(h), "little") for i, h in enumerate(ORDER_8)}
    )
    found = {}
    for name, y in ys.items():
        for sign in (0, 1):
            found[f"{name}-sign{sign}"] = (y | sign << 255).to_bytes(32, "little")
    for y in (0, 1, 5, 18):  # y + p still fits in 255 bits
        found[f"non-canonical-{y}+p"] = (y + P).to_bytes(32, "little")
    return found


@pytest.mark.parametrize("raw", _encodings().values(), ids=_encodings().keys())
def test_small_order_ed25519_public_keys_are_refused(raw: bytes) -> None:
    """With the identity key, R=identity S=0 "verifies" every message: such keys never load."""
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": "k"})


def test_identity_key_forgery_from_the_review_is_impossible() -> None:
    """The reviewer's exploit: a JWKS with the identity point is refused before any token."""
    identity = bytes([1] + [0] * 31)
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64(identity), "kid": "k1"}]}
    with pytest.raises(InvalidKeyError):
        KeySet.from_jwks(jwks)


def test_small_order_ed25519_key_in_pem_is_refused() -> None:
    """The PEM path runs the same point check as the JWK path."""
    der_prefix = bytes.fromhex("302a300506032b6570032100")
    pem = (
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(der_prefix + bytes([1] + [0] * 31))
        + b"-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(pem)


def test_ordinary_ed25519_keys_still_load() -> None:
    """The blocklist is narrow: a generated key loads from its JWK and its PEM."""
    key = SigningKey.generate("EdDSA")
    assert VerifyingKey.from_jwk(key.to_public_jwk()).kid == key.kid
    pem = key.verifying_key._ops._public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert VerifyingKey.from_pem(pem, kid="k").alg == "EdDSA"


@dataclasses.dataclass
class _Profile:
    tenant: str
    role: str


class _Name(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "value",
    [_Profile("t", "admin"), datetime.datetime(2026, 1, 1), _Name("x")],
    ids=["dataclass", "datetime", "str-subclass"],
)
def test_issuer_refuses_claims_that_would_not_parse_back_the_same(value: Any) -> None:
    """The issuer MACs what the verifier will parse: anything else is refused up front."""
    issuer = Issuer(SigningKey.generate("HS256"), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigurationError):
        issuer.issue("u", UserKey.generate(), claims={"p": value})


def test_issuer_refuses_claims_deeper_than_verifiers_accept() -> None:
    """A token the verifier must refuse (depth 17) is never issued."""
    nested: Any = 1
    for _ in range(17):
        nested = [nested]
    issuer = Issuer(SigningKey.generate("HS256"), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigurationError):
        issuer.issue("u", UserKey.generate(), claims={"d": nested})


def test_issuer_refuses_tokens_over_the_size_limit() -> None:
    """Same for size: 8 KiB by default, as the verifier."""
    issuer = Issuer(SigningKey.generate("HS256"), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigurationError):
        issuer.issue("u", UserKey.generate(), claims={"blob": "x" * 8192})


def test_tuples_and_unicode_round_trip_through_both_layers() -> None:
    """Values orjson writes as plain JSON (tuples, non-ASCII, -0.0) still verify."""
    key, user_key = SigningKey.generate("HS256"), UserKey.generate()
    issuer = Issuer(key, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW)
    claims = {"roles": ("a", "b"), "name": "Zoë 漢字", "z": -0.0, "n": {"b": 1, "a": 2}}
    token = issuer.issue("u", user_key, claims=claims)
    verifier = UserVerifier(BoundaryVerifier(key, ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE)))
    verified = verifier.verify(token, user_key, now=NOW)
    assert verified["roles"] == ["a", "b"]
    assert orjson.dumps(verified["n"]) == b'{"b":1,"a":2}'


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": [{"kty": "OKP", "kid": [1]}, {"kty": "OKP", "kid": [2]}]},
        {"keys": [{"kty": {}, "kid": "a"}]},
        {"keys": [{"kty": ["RSA"]}]},
    ],
    ids=["list-kids", "dict-kty", "list-kty"],
)
def test_hostile_jwks_shapes_raise_invalid_key_error(jwks: dict[str, Any]) -> None:
    """A broken fetched JWKS fails with the typed error, never TypeError."""
    with pytest.raises(InvalidKeyError):
        KeySet.from_jwks(jwks)


@pytest.mark.parametrize("alg", [["HS256"], {"a": 1}, 256])
def test_non_string_alg_argument_is_invalid_key_error(alg: Any) -> None:
    """Same for an alg of the wrong type passed by a caller."""
    jwk = SigningKey.generate("ES256").to_public_jwk()
    del jwk["alg"]
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk, alg=alg)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk({"kty": {}})


def test_verifier_policy_and_keys_cannot_be_swapped_under_its_cache() -> None:
    """The typ check and header cache were built for one policy and key set: read-only."""
    key = SigningKey.generate("HS256")
    boundary = BoundaryVerifier(key, ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE))
    with pytest.raises(AttributeError):
        boundary.policy = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, typ="dpop+jwt")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        boundary._jws.keys = KeySet(SigningKey.generate("HS256"))  # type: ignore[misc]
