"""Published JOSE vectors: RFC 7515, 7520, 7638 and 8037, byte for byte (see tests/vectors)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sjti import KeySet, SigningKey, VerifyingKey
from sjti._core.jws import CompactVerifier, sign_compact
from sjti._core.keys import thumbprint
from sjti.errors import (
    AlgorithmNotAllowedError,
    InvalidSignatureError,
    TokenError,
)

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Members that make a JWK private (RFC 7518 §6.3.2, §6.2.2, RFC 8037 §2).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


RFC7515 = load("rfc7515.json")["vectors"]
RFC7520 = load("rfc7520.json")["vectors"]
RFC7638 = load("rfc7638.json")["vectors"][0]
RFC8037 = load("rfc8037.json")["vectors"][0]

JWS_VECTORS = [v for v in (*RFC7515, *RFC7520, RFC8037) if not v.get("must_reject")]
DETERMINISTIC = [v for v in JWS_VECTORS if v["deterministic"]]
ALG_NONE = next(v for v in RFC7515 if v.get("must_reject"))


def vector_id(vector: dict[str, Any]) -> str:
    return vector["name"].replace(" ", "-")


def public_jwk(vector: dict[str, Any]) -> dict[str, Any]:
    """The published public JWK, or the symmetric one, or the public half of the private one."""
    if "public_jwk" in vector:
        return vector["public_jwk"]
    return {k: v for k, v in vector["jwk"].items() if k not in PRIVATE_MEMBERS}


def verifier_for(vector: dict[str, Any]) -> CompactVerifier:
    key = VerifyingKey.from_jwk(public_jwk(vector), alg=vector["alg"])
    return CompactVerifier(KeySet(verify_only=[key]))


def attached(vector: dict[str, Any]) -> str:
    """The compact token with its payload segment in place (RFC 7520 4.5 ships it detached)."""
    header, payload, signature = vector["compact"].split(".")
    if vector.get("detached"):
        assert payload == ""
        payload = b64url(vector["payload"].encode("utf-8"))
    return f"{header}.{payload}.{signature}"


def with_signature(token: str, signature: str) -> str:
    return token.rpartition(".")[0] + "." + signature


# ---------------------------------------------------------------------------------------
# verification and signing


@pytest.mark.parametrize("vector", JWS_VECTORS, ids=vector_id)
def test_published_token_verifies_with_published_key(vector: dict[str, Any]) -> None:
    """Interop: tokens other JOSE libraries produce must verify, payload intact to the byte."""
    header, payload = verifier_for(vector).verify(attached(vector))

    assert vector["payload"].encode("utf-8") == payload
    assert vector["alg"] == header["alg"]


@pytest.mark.parametrize("vector", JWS_VECTORS, ids=vector_id)
def test_published_token_verifies_as_bytes(vector: dict[str, Any]) -> None:
    """A token handed over as bytes (straight from a header) must verify like the str form."""
    _, payload = verifier_for(vector).verify(attached(vector).encode("ascii"))

    assert vector["payload"].encode("utf-8") == payload


def test_detached_vector_without_its_payload_is_refused() -> None:
    """RFC 7520 4.5 as shipped signs a payload that is absent: the empty one must not pass."""
    vector = next(v for v in RFC7520 if v.get("detached"))

    with pytest.raises(InvalidSignatureError):
        verifier_for(vector).verify(vector["compact"])


@pytest.mark.parametrize("vector", DETERMINISTIC, ids=vector_id)
def test_deterministic_vector_signs_byte_for_byte(vector: dict[str, Any]) -> None:
    """HMAC, RSA PKCS#1 v1.5 and Ed25519 are deterministic: our signer must match the RFC."""
    key = SigningKey.from_jwk(vector["jwk"], alg=vector["alg"])
    header_segment = vector["compact"].split(".")[0].encode("ascii")

    token = sign_compact(header_segment, vector["payload"].encode("utf-8"), key)

    assert attached(vector) == token.decode("ascii")


@pytest.mark.parametrize("vector", JWS_VECTORS, ids=vector_id)
def test_published_private_key_signs_what_public_key_accepts(vector: dict[str, Any]) -> None:
    """Imported private keys must sign tokens their published public half accepts (ES, PS too)."""
    key = SigningKey.from_jwk(vector["jwk"], alg=vector["alg"])
    header_segment = vector["compact"].split(".")[0].encode("ascii")
    payload = vector["payload"].encode("utf-8")

    token = sign_compact(header_segment, payload, key)

    assert payload == verifier_for(vector).verify(token)[1]


# ---------------------------------------------------------------------------------------
# RFC 7515 A.5: the unsecured JWS


@pytest.mark.parametrize("vector", [RFC7515[0], RFC7515[1], RFC8037], ids=vector_id)
def test_rfc7515_a5_alg_none_is_refused(vector: dict[str, Any]) -> None:
    """alg "none" is the classic bypass: refused whatever key set the verifier holds."""
    assert ALG_NONE["compact"].endswith(".")

    with pytest.raises(AlgorithmNotAllowedError):
        verifier_for(vector).verify(ALG_NONE["compact"])


def test_rfc7515_a5_with_a_real_signature_is_still_refused() -> None:
    """Even carrying a valid MAC, an alg "none" header must not select the key's algorithm."""
    vector = RFC7515[0]
    key = SigningKey.from_jwk(vector["jwk"], alg=vector["alg"])
    header_segment = ALG_NONE["compact"].split(".")[0].encode("ascii")
    token = sign_compact(header_segment, ALG_NONE["payload"].encode("utf-8"), key)

    with pytest.raises(AlgorithmNotAllowedError):
        verifier_for(vector).verify(token)


# ---------------------------------------------------------------------------------------
# RFC 7638 thumbprints and default kids


def test_rfc7638_thumbprint_matches_published_value() -> None:
    """kids default to the thumbprint, so it must match what other libraries compute."""
    assert RFC7638["thumbprint"] == thumbprint(RFC7638["jwk"])


def test_rfc7638_thumbprint_input_is_the_published_canonical_json() -> None:
    """Guards the vector itself: the stored thumbprint is the hash of the stored input."""
    digest = hashlib.sha256(RFC7638["thumbprint_input"].encode("utf-8")).digest()

    assert RFC7638["thumbprint"] == b64url(digest)


def test_rfc8037_a3_thumbprint_matches_published_value() -> None:
    """The OKP thumbprint uses crv, kty, x only; a wrong member set would change every kid."""
    assert RFC8037["thumbprint"] == thumbprint(RFC8037["public_jwk"])
    assert RFC8037["thumbprint"] == thumbprint(RFC8037["jwk"])


def test_rfc7638_key_imported_without_kid_gets_thumbprint_kid() -> None:
    """A JWKS entry without kid must still be addressable by the standard kid."""
    jwk = {k: v for k, v in RFC7638["jwk"].items() if k != "kid"}

    assert RFC7638["thumbprint"] == VerifyingKey.from_jwk(jwk).kid


def test_rfc7638_key_imported_with_kid_keeps_it() -> None:
    """A published kid must win over the thumbprint, or tokens naming it would not verify."""
    assert RFC7638["jwk"]["kid"] == VerifyingKey.from_jwk(RFC7638["jwk"]).kid


def test_rfc8037_keys_imported_without_kid_get_thumbprint_kid() -> None:
    """The public key and the private key must get the same kid, or signer and verifier split."""
    assert RFC8037["thumbprint"] == VerifyingKey.from_jwk(RFC8037["public_jwk"]).kid
    assert RFC8037["thumbprint"] == SigningKey.from_jwk(RFC8037["jwk"]).kid


# ---------------------------------------------------------------------------------------
# tampering with the signature segment


@pytest.mark.parametrize("vector", JWS_VECTORS, ids=vector_id)
def test_every_single_byte_flip_of_signature_is_refused(vector: dict[str, Any]) -> None:
    """No byte of the signature may be ignored; a flipped one must fail as a bad signature."""
    token = attached(vector)
    verifier = verifier_for(vector)
    signature = b64url_decode(token.rpartition(".")[2])

    for index in range(len(signature)):
        for mask in (0x01, 0x80, 0xFF):
            flipped = bytearray(signature)
            flipped[index] ^= mask
            with pytest.raises(InvalidSignatureError):
                verifier.verify(with_signature(token, b64url(bytes(flipped))))


@pytest.mark.parametrize("vector", JWS_VECTORS, ids=vector_id)
def test_every_character_change_in_signature_segment_is_refused(vector: dict[str, Any]) -> None:
    """Any other character anywhere in the segment, even one decoding to the same bytes, fails."""
    token = attached(vector)
    verifier = verifier_for(vector)
    segment = token.rpartition(".")[2]

    for index, char in enumerate(segment):
        # two replacements per position: a neighbour in the alphabet, and its opposite
        position = B64URL_ALPHABET.index(char)
        for replacement in {(position + 1) % 64, (position + 32) % 64}:
            changed = segment[:index] + B64URL_ALPHABET[replacement] + segment[index + 1 :]
            with pytest.raises(TokenError):
                verifier.verify(with_signature(token, changed))
