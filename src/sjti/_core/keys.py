"""Typed signing and verifying keys, each pinned to one algorithm and one ``kid``.

Keys are built from raw secrets, PEM or JWK (RFC 7517) and validated once, when they are
created, so verification never re-checks them. A key's ``kid`` defaults to its RFC 7638
thumbprint. Exports never leak private or secret parts unless the method says so by name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from ..errors import ConfigurationError, InvalidKeyError, MalformedTokenError
from .algorithms import (
    Algorithm,
    EcOps,
    Ed25519Ops,
    HmacOps,
    RsaOps,
    SignatureOps,
    get_algorithm,
)
from .codec import b64url_decode, b64url_encode

__all__ = ["MIN_RSA_BITS", "SigningKey", "VerifyingKey", "thumbprint"]

MIN_RSA_BITS: Final = 2048
_MAX_KID_LENGTH: Final = 256
_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CURVE_ALGS: Final = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
# Seen in published vectors (Wycheproof's copy of RFC 7520): a misspelling of ES512 that is
# harmless because the P-521 curve alone already fixes the algorithm.
_ALG_ALIASES: Final = {("ES521", "P-521"): "ES512"}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_REQUIRED_MEMBERS: Final = {
    "oct": ("k",),
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
    "OKP": ("crv", "x"),
}


def thumbprint(public_members: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the required members."""
    kty = public_members["kty"]
    required = {name: public_members[name] for name in (*_REQUIRED_MEMBERS[kty], "kty")}
    canonical = orjson.dumps(required, option=orjson.OPT_SORT_KEYS)
    return b64url_encode(hashlib.sha256(canonical).digest()).decode("ascii")


class VerifyingKey:
    """A key that checks signatures for exactly one algorithm.

    For HMAC algorithms it holds the shared secret (and is never exported); for the others
    it holds only the public key and can be published in a JWKS.
    """

    __slots__ = ("_ops", "_public_jwk", "algorithm", "kid")

    def __init__(
        self,
        *,
        kid: str,
        algorithm: Algorithm,
        ops: SignatureOps,
        public_jwk: dict[str, Any] | None,
    ) -> None:
        # Not for direct use: build keys with the from_* class methods.
        self.kid = kid
        self.algorithm = algorithm
        self._ops = ops
        self._public_jwk = public_jwk

    @property
    def alg(self) -> str:
        return self.algorithm.name

    @property
    def is_symmetric(self) -> bool:
        return self.algorithm.kty == "oct"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alg={self.alg!r}, kid={self.kid!r})"

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Check a raw signature. Advanced: the token codecs call this for you."""
        return self._ops.verify(signing_input, signature)

    def to_jwk(self) -> dict[str, Any]:
        """The public JWK (with ``kid``, ``alg``, ``use``). Symmetric keys refuse."""
        if self._public_jwk is None:
            raise InvalidKeyError("symmetric keys are never exported")
        return dict(self._public_jwk)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], *, alg: str | None = None) -> VerifyingKey:
        """Import a public (or symmetric) JWK; private members are ignored if present."""
        return _parse_jwk(jwk, alg=alg, want_private=False)[0]

    @classmethod
    def from_pem(
        cls, pem: bytes, *, alg: str | None = None, kid: str | None = None
    ) -> VerifyingKey:
        """Load a public key (SubjectPublicKeyInfo PEM)."""
        try:
            public = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            raise InvalidKeyError("cannot load PEM public key") from None
        return _from_crypto(public, None, alg=alg, kid=kid)[0]

    @classmethod
    def from_secret(
        cls, secret: bytes, *, alg: str = "HS256", kid: str | None = None
    ) -> VerifyingKey:
        return SigningKey.from_secret(secret, alg=alg, kid=kid).verifying_key


class SigningKey:
    """A private or secret key that signs with exactly one algorithm."""

    __slots__ = ("_private_jwk", "_verifying_key", "algorithm")

    def __init__(self, *, verifying_key: VerifyingKey, private_jwk: dict[str, Any]) -> None:
        # Not for direct use: build keys with generate() or the from_* class methods.
        if not verifying_key._ops.can_sign:
            raise InvalidKeyError("key has no private part")
        self._verifying_key = verifying_key
        self._private_jwk = private_jwk
        self.algorithm = verifying_key.algorithm

    @property
    def kid(self) -> str:
        return self._verifying_key.kid

    @property
    def alg(self) -> str:
        return self.algorithm.name

    @property
    def verifying_key(self) -> VerifyingKey:
        return self._verifying_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alg={self.alg!r}, kid={self.kid!r})"

    def sign(self, signing_input: bytes) -> bytes:
        """Raw signature. Advanced: the token codecs call this for you."""
        return self._verifying_key._ops.sign(signing_input)

    def to_public_jwk(self) -> dict[str, Any]:
        return self._verifying_key.to_jwk()

    def export_private_jwk(self) -> dict[str, Any]:
        """The full JWK, secret parts included. Store it like a password."""
        return dict(self._private_jwk)

    @classmethod
    def generate(cls, alg: str = "EdDSA", *, kid: str | None = None) -> SigningKey:
        """A fresh random key for ``alg`` (HMAC secrets as long as the hash output)."""
        algorithm = get_algorithm(alg)
        if algorithm.kty == "oct":
            return cls.from_secret(secrets.token_bytes(algorithm.digest_size), alg=alg, kid=kid)
        private: PrivateKeyTypes
        if algorithm.kty == "RSA":
            private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        elif algorithm.kty == "EC":
            private = ec.generate_private_key(_CURVES[algorithm.curve or ""]())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return _signing(*_from_crypto(private.public_key(), private, alg=alg, kid=kid))

    @classmethod
    def from_secret(
        cls, secret: bytes, *, alg: str = "HS256", kid: str | None = None
    ) -> SigningKey:
        """An HMAC key. The secret must be at least as long as the hash output."""
        algorithm = get_algorithm(alg)
        if algorithm.kty != "oct":
            raise InvalidKeyError("from_secret is for HS256, HS384 and HS512")
        if not isinstance(secret, bytes):
            raise InvalidKeyError("an HMAC secret is bytes")
        if len(secret) < algorithm.digest_size:
            raise InvalidKeyError(f"{alg} needs a secret of at least {algorithm.digest_size} bytes")
        members = {"kty": "oct", "k": b64url_encode(secret).decode("ascii")}
        kid = _check_kid(kid) if kid is not None else thumbprint(members)
        verifying = VerifyingKey(
            kid=kid, algorithm=algorithm, ops=HmacOps(secret, algorithm), public_jwk=None
        )
        return cls(verifying_key=verifying, private_jwk={**members, "kid": kid, "alg": alg})

    @classmethod
    def from_pem(
        cls,
        pem: bytes,
        *,
        alg: str | None = None,
        kid: str | None = None,
        password: bytes | None = None,
    ) -> SigningKey:
        """Load a PKCS#8 / traditional private key PEM. RSA keys need ``alg``."""
        try:
            private = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError):
            raise InvalidKeyError("cannot load PEM private key") from None
        return _signing(*_from_crypto(private.public_key(), private, alg=alg, kid=kid))

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], *, alg: str | None = None) -> SigningKey:
        """Import a private or symmetric JWK."""
        return _signing(*_parse_jwk(jwk, alg=alg, want_private=True))


# ---------------------------------------------------------------------------------------
# construction helpers


def _check_kid(kid: object) -> str:
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
        raise InvalidKeyError(f"kid must be a string of 1..{_MAX_KID_LENGTH} characters")
    return kid


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big")).decode("ascii")


def _roca_vulnerable(n: int) -> bool:
    """The ROCA fingerprint (CVE-2017-15361): n mod p lies in <65537> for all test primes."""
    return all(n % p in group for p, group in _ROCA_GROUPS)


def _powers(generator: int, p: int) -> frozenset[int]:
    seen, x = {1}, generator % p
    while x not in seen:
        seen.add(x)
        x = (x * generator) % p
    return frozenset(seen)


_ROCA_GROUPS: Final = tuple(
    (p, _powers(65537, p))
    for p in (
        3,
        5,
        7,
        11,
        13,
        17,
        19,
        23,
        29,
        31,
        37,
        41,
        43,
        47,
        53,
        59,
        61,
        67,
        71,
        73,
        79,
        83,
        89,
        97,
        101,
        103,
        107,
        109,
        113,
        127,
        131,
        137,
        139,
        149,
        151,
        157,
        163,
        167,
    )
)


def _resolve_alg(kty: str, curve: str | None, alg: str | None) -> Algorithm:
    if alg is None:
        if kty == "OKP":
            alg = "EdDSA"
        elif kty == "EC" and curve in _CURVE_ALGS:
            alg = _CURVE_ALGS[curve]
        else:
            raise InvalidKeyError(f"{kty} keys need an explicit alg")
    if not isinstance(alg, str):
        raise InvalidKeyError("alg must be a string")
    alg = _ALG_ALIASES.get((alg, curve or ""), alg)
    try:
        algorithm = get_algorithm(alg)
    except ConfigurationError:
        raise InvalidKeyError("algorithm not supported") from None
    if algorithm.kty != kty or (algorithm.curve is not None and algorithm.curve != curve):
        raise InvalidKeyError(f"alg {algorithm.name} does not fit this {kty} key")
    return algorithm


def _from_crypto(
    public: PublicKeyTypes,
    private: PrivateKeyTypes | None,
    *,
    alg: str | None,
    kid: str | None,
) -> tuple[VerifyingKey, dict[str, Any] | None]:
    """Build a key from ``cryptography`` objects after checking size and shape.

    Returns the verifying key and, when ``private`` is given, the private JWK.
    """
    ops: SignatureOps
    members: dict[str, str]
    private_members: dict[str, str] = {}
    if isinstance(public, rsa.RSAPublicKey):
        algorithm = _resolve_alg("RSA", None, alg)
        numbers = public.public_numbers()
        _check_rsa(numbers.n, numbers.e)
        rsa_private = private if isinstance(private, rsa.RSAPrivateKey) else None
        ops = RsaOps(public, rsa_private, algorithm)
        members = {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
        if rsa_private is not None:
            pn = rsa_private.private_numbers()
            private_members = {
                "d": _uint(pn.d),
                "p": _uint(pn.p),
                "q": _uint(pn.q),
                "dp": _uint(pn.dmp1),
                "dq": _uint(pn.dmq1),
                "qi": _uint(pn.iqmp),
            }
    elif isinstance(public, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(public.curve.name)
        if curve is None:
            raise InvalidKeyError("curve not supported")
        algorithm = _resolve_alg("EC", curve, alg)
        size = (public.curve.key_size + 7) // 8
        numbers_ec = public.public_numbers()
        ec_private = private if isinstance(private, ec.EllipticCurvePrivateKey) else None
        ops = EcOps(public, ec_private, algorithm)
        members = {
            "kty": "EC",
            "crv": curve,
            "x": _uint(numbers_ec.x, size),
            "y": _uint(numbers_ec.y, size),
        }
        if ec_private is not None:
            private_members = {"d": _uint(ec_private.private_numbers().private_value, size)}
    elif isinstance(public, ed25519.Ed25519PublicKey):
        algorithm = _resolve_alg("OKP", "Ed25519", alg)
        ed_private = private if isinstance(private, ed25519.Ed25519PrivateKey) else None
        ops = Ed25519Ops(public, ed_private)
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        _check_ed25519_point(raw)
        members = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw).decode("ascii")}
        if ed_private is not None:
            raw_d = ed_private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            private_members = {"d": b64url_encode(raw_d).decode("ascii")}
    else:
        raise InvalidKeyError("key type not supported (RSA, EC P-256/384/521, Ed25519)")
    kid = _check_kid(kid) if kid is not None else thumbprint(members)
    public_jwk = {**members, "kid": kid, "alg": algorithm.name, "use": "sig"}
    verifying = VerifyingKey(kid=kid, algorithm=algorithm, ops=ops, public_jwk=public_jwk)
    if private is None:
        return verifying, None
    return verifying, {**public_jwk, **private_members}


def _signing(verifying: VerifyingKey, private_jwk: dict[str, Any] | None) -> SigningKey:
    if private_jwk is None:
        raise InvalidKeyError("key has no private part")
    return SigningKey(verifying_key=verifying, private_jwk=private_jwk)


# Ed25519 points of small order (1, 2, 4, 8), by y-coordinate: a public key equal to one of
# them lets "signatures" verify for messages nobody signed (e.g. R = identity, S = 0).
_ED25519_P: Final = 2**255 - 19
_ED25519_SMALL_ORDER_Y: Final = frozenset(
    {
        0,
        1,
        _ED25519_P - 1,
        int.from_bytes(
            bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
            "little",
        ),
        int.from_bytes(
            bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            "little",
        ),
    }
)


def _check_ed25519_point(raw: bytes) -> None:
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)  # top bit is the sign of x
    if y >= _ED25519_P or y in _ED25519_SMALL_ORDER_Y:
        raise InvalidKeyError("Ed25519 public key is a small-order or non-canonical point")


def _check_rsa(n: int, e: int) -> None:
    if n.bit_length() < MIN_RSA_BITS:
        raise InvalidKeyError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    if e < 3 or e % 2 == 0 or e >= n:
        raise InvalidKeyError("RSA public exponent is unsafe")
    if _roca_vulnerable(n):
        raise InvalidKeyError("RSA key has the ROCA weakness (CVE-2017-15361)")


def _member_bytes(jwk: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKeyError(f"JWK member {name!r} missing or not a string")
    try:
        raw = b64url_decode(value)
    except MalformedTokenError:
        raise InvalidKeyError(f"JWK member {name!r} is not base64url") from None
    if length is not None and len(raw) != length:
        raise InvalidKeyError(f"JWK member {name!r} has the wrong length")
    return raw


def _member_int(jwk: Mapping[str, Any], name: str) -> int:
    raw = _member_bytes(jwk, name)
    if not raw:
        raise InvalidKeyError(f"JWK member {name!r} is empty")
    return int.from_bytes(raw, "big")


def _check_usage(jwk: Mapping[str, Any], *, want_private: bool) -> None:
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise InvalidKeyError("JWK 'use' is not 'sig'")
    ops = jwk.get("key_ops")
    if ops is not None:
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise InvalidKeyError("JWK 'key_ops' must be a list of strings")
        if len(set(ops)) != len(ops):
            raise InvalidKeyError("JWK 'key_ops' has duplicates")
        needed = "sign" if want_private else "verify"
        if needed not in ops and not (not want_private and "sign" in ops and "k" in jwk):
            raise InvalidKeyError(f"JWK 'key_ops' does not allow {needed!r}")


def _parse_jwk(
    jwk: Mapping[str, Any], *, alg: str | None, want_private: bool
) -> tuple[VerifyingKey, dict[str, Any] | None]:
    """Validate a JWK; return the verifying key and, if wanted, the private JWK."""
    if not isinstance(jwk, Mapping):
        raise InvalidKeyError("a JWK is a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _REQUIRED_MEMBERS:
        raise InvalidKeyError("JWK 'kty' missing or not supported")
    jwk_alg = jwk.get("alg")
    if jwk_alg is not None and not isinstance(jwk_alg, str):
        raise InvalidKeyError("JWK 'alg' must be a string")
    if alg is not None and jwk_alg is not None and alg != jwk_alg:
        raise InvalidKeyError("JWK 'alg' differs from the requested algorithm")
    chosen = alg or jwk_alg
    kid = _check_kid(jwk["kid"]) if "kid" in jwk else None
    _check_usage(jwk, want_private=want_private)
    has_private = any(name in jwk for name in _PRIVATE_MEMBERS - {"k"})

    if kty == "oct":
        secret = _member_bytes(jwk, "k")
        if chosen is None:
            raise InvalidKeyError("oct keys need an explicit alg")
        algorithm = _resolve_alg("oct", None, chosen)
        if algorithm.kty != "oct":  # pragma: no cover - _resolve_alg already checks
            raise InvalidKeyError("alg does not fit an oct key")
        key = SigningKey.from_secret(secret, alg=algorithm.name, kid=kid)
        return key.verifying_key, key.export_private_jwk()

    if want_private and not has_private:
        raise InvalidKeyError("JWK has no private part")
    curve = jwk.get("crv") if kty in ("EC", "OKP") else None
    if curve is not None and not isinstance(curve, str):
        raise InvalidKeyError("JWK 'crv' must be a string")
    algorithm = _resolve_alg(kty, curve, chosen)
    public: PublicKeyTypes
    private: PrivateKeyTypes | None = None
    try:
        if kty == "RSA":
            n, e = _member_int(jwk, "n"), _member_int(jwk, "e")
            _check_rsa(n, e)
            public_numbers = rsa.RSAPublicNumbers(e, n)
            public = public_numbers.public_key()
            if want_private:
                private = _rsa_private(jwk, public_numbers)
        elif kty == "EC":
            curve_cls = _CURVES.get(curve or "")
            if curve_cls is None:
                raise InvalidKeyError("JWK curve not supported")
            curve_obj = curve_cls()
            size = (curve_obj.key_size + 7) // 8
            x = int.from_bytes(_member_bytes(jwk, "x", size), "big")
            y = int.from_bytes(_member_bytes(jwk, "y", size), "big")
            # raises ValueError when the point is not on the curve
            public = ec.EllipticCurvePublicNumbers(x, y, curve_obj).public_key()
            if want_private:
                d = int.from_bytes(_member_bytes(jwk, "d", size), "big")
                private = ec.EllipticCurvePrivateNumbers(d, public.public_numbers()).private_key()
        else:
            if curve != "Ed25519":
                raise InvalidKeyError("JWK OKP curve not supported (Ed25519 only)")
            public = ed25519.Ed25519PublicKey.from_public_bytes(_member_bytes(jwk, "x", 32))
            if want_private:
                private = ed25519.Ed25519PrivateKey.from_private_bytes(_member_bytes(jwk, "d", 32))
                derived = private.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
                if not hmac.compare_digest(derived, _member_bytes(jwk, "x", 32)):
                    raise InvalidKeyError("JWK private and public parts do not match")
    except ValueError:
        raise InvalidKeyError("JWK does not describe a valid key") from None
    return _from_crypto(public, private, alg=algorithm.name, kid=kid)


def _rsa_private(jwk: Mapping[str, Any], public_numbers: rsa.RSAPublicNumbers) -> rsa.RSAPrivateKey:
    if "oth" in jwk:
        raise InvalidKeyError("multi-prime RSA keys are not supported")
    d = _member_int(jwk, "d")
    if all(name in jwk for name in ("p", "q", "dp", "dq", "qi")):
        p, q = _member_int(jwk, "p"), _member_int(jwk, "q")
        dp, dq, qi = _member_int(jwk, "dp"), _member_int(jwk, "dq"), _member_int(jwk, "qi")
    else:
        p, q = rsa.rsa_recover_prime_factors(public_numbers.n, public_numbers.e, d)
        dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
    return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public_numbers).private_key()
