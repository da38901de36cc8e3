"""The allow-list of JWS algorithms and the primitive operations behind each.

A key is bound to exactly one algorithm when it is created; verification asks the key, never
the token, which algorithm to run. Every primitive comes from ``cryptography``.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ..errors import ConfigurationError
from .codec import b64url_encode

_Public = TypeVar("_Public")
_Private = TypeVar("_Private")

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "EcOps",
    "Ed25519Ops",
    "HmacOps",
    "RsaOps",
    "SignatureOps",
    "get_algorithm",
]


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One allowed JWS ``alg`` and the key shape it needs."""

    name: str
    kty: str  # "oct", "RSA", "EC" or "OKP"
    hash_name: str | None  # None for EdDSA, which hashes internally
    curve: str | None = None  # "P-256", "P-384", "P-521" or "Ed25519"
    pss: bool = False

    def new_hash(self) -> hashes.HashAlgorithm:
        return _HASHES[self.hash_name or ""]()

    @property
    def digest_size(self) -> int:
        return self.new_hash().digest_size


_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}

ALGORITHMS: Final[dict[str, Algorithm]] = {
    a.name: a
    for a in (
        Algorithm("HS256", "oct", "SHA256"),
        Algorithm("HS384", "oct", "SHA384"),
        Algorithm("HS512", "oct", "SHA512"),
        Algorithm("RS256", "RSA", "SHA256"),
        Algorithm("RS384", "RSA", "SHA384"),
        Algorithm("RS512", "RSA", "SHA512"),
        Algorithm("PS256", "RSA", "SHA256", pss=True),
        Algorithm("PS384", "RSA", "SHA384", pss=True),
        Algorithm("PS512", "RSA", "SHA512", pss=True),
        Algorithm("ES256", "EC", "SHA256", "P-256"),
        Algorithm("ES384", "EC", "SHA384", "P-384"),
        Algorithm("ES512", "EC", "SHA512", "P-521"),
        Algorithm("EdDSA", "OKP", None, "Ed25519"),
        # RFC 9864's fully-specified name for the same signature; a key pins one or the other
        Algorithm("Ed25519", "OKP", None, "Ed25519"),
    )
}


def get_algorithm(name: str) -> Algorithm:
    """Look an algorithm up in the allow-list; anything else is a configuration error."""
    alg = ALGORITHMS.get(name)
    if alg is None:
        raise ConfigurationError(f"algorithm not supported: {name[:20]!r}")
    return alg


class SignatureOps:
    """Sign and verify for one key and one algorithm. Subclasses hold the primitive."""

    __slots__ = ()

    @property
    def can_sign(self) -> bool:
        return False

    def sign(self, data: bytes) -> bytes:
        raise ConfigurationError("this key can only verify")

    def verify(self, data: bytes, signature: bytes) -> bool:
        raise NotImplementedError

    def verify_encoded(
        self, data: bytes, signature_b64: bytes, decode: Callable[[bytes], bytes]
    ) -> bool:
        """Verify against the base64url signature segment as it appears in the token."""
        return self.verify(data, decode(signature_b64))


class HmacOps(SignatureOps):
    """HMAC with a prepared key state that is copied per call (no re-keying cost)."""

    __slots__ = ("_template",)

    def __init__(self, secret: bytes, alg: Algorithm) -> None:
        self._template = crypto_hmac.HMAC(secret, alg.new_hash())

    def sign(self, data: bytes) -> bytes:
        mac = self._template.copy()
        mac.update(data)
        return mac.finalize()

    def verify(self, data: bytes, signature: bytes) -> bool:
        return _stdlib_hmac.compare_digest(self.sign(data), signature)

    @property
    def can_sign(self) -> bool:
        return True

    def verify_encoded(
        self, data: bytes, signature_b64: bytes, decode: Callable[[bytes], bytes]
    ) -> bool:
        # Comparing encodings is exact: only the one canonical spelling can match.
        return _stdlib_hmac.compare_digest(b64url_encode(self.sign(data)), signature_b64)


class _AsymmetricOps(SignatureOps, Generic[_Public, _Private]):
    """Shared shape: a public key that verifies and an optional private key that signs."""

    __slots__ = ("_private", "_public")

    def __init__(self, public: _Public, private: _Private | None) -> None:
        self._public = public
        self._private = private

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    def sign(self, data: bytes) -> bytes:
        if self._private is None:
            return super().sign(data)
        return self._sign(self._private, data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._check(data, signature)
        except InvalidSignature:
            return False
        return True

    def _sign(self, private: _Private, data: bytes) -> bytes:
        raise NotImplementedError

    def _check(self, data: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` is valid and of the exact size."""
        raise NotImplementedError


class RsaOps(_AsymmetricOps[rsa.RSAPublicKey, rsa.RSAPrivateKey]):
    __slots__ = ("_hash", "_padding", "_size")

    def __init__(
        self, public: rsa.RSAPublicKey, private: rsa.RSAPrivateKey | None, alg: Algorithm
    ) -> None:
        super().__init__(public, private)
        self._hash = alg.new_hash()
        self._size = (public.key_size + 7) // 8
        self._padding: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(alg.new_hash()), self._hash.digest_size)
            if alg.pss
            else padding.PKCS1v15()
        )

    def _sign(self, private: rsa.RSAPrivateKey, data: bytes) -> bytes:
        return private.sign(data, self._padding, self._hash)

    def _check(self, data: bytes, signature: bytes) -> None:
        # RFC 7518 §3.3/§3.5: the signature is exactly as long as the modulus
        if len(signature) != self._size:
            raise InvalidSignature
        self._public.verify(signature, data, self._padding, self._hash)


class EcOps(_AsymmetricOps[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey]):
    __slots__ = ("_ecdsa", "_size")

    def __init__(
        self,
        public: ec.EllipticCurvePublicKey,
        private: ec.EllipticCurvePrivateKey | None,
        alg: Algorithm,
    ) -> None:
        super().__init__(public, private)
        self._ecdsa = ec.ECDSA(alg.new_hash())
        self._size = (public.curve.key_size + 7) // 8

    def _sign(self, private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
        r, s = decode_dss_signature(private.sign(data, self._ecdsa))
        return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")

    def _check(self, data: bytes, signature: bytes) -> None:
        # RFC 7518 §3.4: exactly R || S, each the curve's size; no DER, no trimming
        size = self._size
        if len(signature) != 2 * size:
            raise InvalidSignature
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        self._public.verify(encode_dss_signature(r, s), data, self._ecdsa)


class Ed25519Ops(_AsymmetricOps[ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey]):
    __slots__ = ()

    def _sign(self, private: ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
        return private.sign(data)

    def _check(self, data: bytes, signature: bytes) -> None:
        if len(signature) != 64:
            raise InvalidSignature
        self._public.verify(signature, data)
