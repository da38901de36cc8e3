"""Keys and key sets: what may be loaded, what is exported, how rotation behaves."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

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
    UnknownKeyError,
    UserKey,
    VerifyingKey,
)
from sjti._core.jws import CompactVerifier, encode_header, sign_compact
from sjti.testing import FrozenClock
from tests.conftest import ALGORITHMS, AUDIENCE, ISSUER, NOW, key_for

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
ASYMMETRIC = tuple(a for a in ALGORITHMS if not a.startswith("HS"))
PEM = serialization.Encoding.PEM
PKCS8 = serialization.PrivateFormat.PKCS8
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
NO_PASSWORD = serialization.NoEncryption()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64(value.to_bytes(size, "big"))


def private_pem(key: Any) -> bytes:
    return key.private_bytes(PEM, PKCS8, NO_PASSWORD)  # type: ignore[no-any-return]


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(PEM, SPKI)  # type: ignore[no-any-return]


@cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """One cryptography RSA key per size for the whole module."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_private_jwk(key: rsa.RSAPrivateKey, **extra: Any) -> dict[str, Any]:
    pn = key.private_numbers()
    return {
        "kty": "RSA",
        "n": b64_uint(pn.public_numbers.n),
        "e": b64_uint(pn.public_numbers.e),
        "d": b64_uint(pn.d),
        "p": b64_uint(pn.p),
        "q": b64_uint(pn.q),
        "dp": b64_uint(pn.dmp1),
        "dq": b64_uint(pn.dmq1),
        "qi": b64_uint(pn.iqmp),
        **extra,
    }


def public_members(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}


def issue(keys: KeySet | SigningKey) -> str:
    return Issuer(keys, issuer=ISSUER, audience=AUDIENCE, clock=FrozenClock(NOW)).issue(
        "user-1", UserKey.generate()
    )


def verify(keys: KeySet | SigningKey | VerifyingKey, token: str) -> dict[str, Any]:
    policy = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE)
    return BoundaryVerifier(keys, policy, clock=FrozenClock(NOW)).verify(token)


def header_kid(token: str) -> str:
    segment = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return header["kid"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# HMAC secrets


@pytest.mark.parametrize(("alg", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_shorter_than_hash_is_refused(alg: str, minimum: int) -> None:
    """RFC 7518 §3.2: an HMAC key shorter than the hash output weakens every token it signs."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_secret(b"\x01" * (minimum - 1), alg=alg)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_secret(b"\x01" * (minimum - 1), alg=alg)
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk({"kty": "oct", "k": b64(b"\x01" * (minimum - 1)), "alg": alg})


@pytest.mark.parametrize(("alg", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_of_exact_length_is_accepted(alg: str, minimum: int) -> None:
    """The minimum is inclusive: a secret exactly as long as the hash output signs tokens."""
    key = SigningKey.from_secret(bytes(range(minimum)), alg=alg)
    assert alg == key.alg
    verify(key, issue(key))


@pytest.mark.parametrize(
    "secret",
    [pytest.param(b"", id="empty"), pytest.param("x" * 64, id="str")],
)
def test_hmac_secret_must_be_bytes(secret: Any) -> None:
    """A str secret or an empty one is a programming error, not a key."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_secret(secret)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_from_secret_refuses_asymmetric_algorithms(alg: str) -> None:
    """A secret must never be bound to a public-key algorithm (the root of alg confusion)."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_secret(b"\x01" * 64, alg=alg)


@pytest.mark.parametrize("alg", ["none", "HS1", "hs256", "RSA1_5", ""])
def test_unknown_algorithm_is_a_configuration_error(alg: str) -> None:
    """Only allow-listed algorithms can be bound to a key; "none" least of all."""
    with pytest.raises(ConfigurationError):
        SigningKey.generate(alg)
    with pytest.raises(ConfigurationError):
        SigningKey.from_secret(b"\x01" * 64, alg=alg)


# ---------------------------------------------------------------------------------------
# RSA


def test_rsa_1024_is_refused_from_pem_and_jwk() -> None:
    """RSA below 2048 bits is factorable in practice; no import path may accept it."""
    small = rsa_key(1024)
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(private_pem(small), alg="RS256")
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(public_pem(small), alg="RS256")
    jwk = rsa_private_jwk(small, alg="RS256")
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(jwk)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(public_members(jwk))


def test_rsa_2048_is_accepted() -> None:
    """2048 bits is the documented floor and must itself be usable."""
    key = SigningKey.from_pem(private_pem(rsa_key(2048)), alg="PS256")
    claims = verify(VerifyingKey.from_pem(public_pem(rsa_key(2048)), alg="PS256"), issue(key))
    assert claims["iss"] == ISSUER


@pytest.mark.parametrize(
    "exponent",
    [
        pytest.param(b64_uint(1), id="e=1"),
        pytest.param(b64_uint(2), id="e=2"),
        pytest.param(b64_uint(65536), id="e-even"),
        pytest.param(b64_uint(0, 1), id="e=0"),
        pytest.param("", id="e-empty"),
        pytest.param(None, id="e-null"),
    ],
)
def test_rsa_unsafe_public_exponent_is_refused(exponent: Any) -> None:
    """e=1 makes the signature equal the message; even e is not a valid RSA key at all."""
    jwk = dict(key_for("RS256").to_public_jwk(), e=exponent)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)


def test_rsa_exponent_not_below_modulus_is_refused() -> None:
    """e >= n is not a valid RSA public key."""
    jwk = key_for("RS256").to_public_jwk()
    jwk["e"] = jwk["n"]
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)


def test_rsa_private_jwk_with_foreign_private_part_is_refused() -> None:
    """A JWK whose private half belongs to another modulus would sign unverifiable tokens."""
    jwk = rsa_private_jwk(rsa_key(2048), alg="RS256")
    other = key_for("RS256").export_private_jwk()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk({**jwk, "d": other["d"]})


def test_rsa_multi_prime_is_refused() -> None:
    """Multi-prime RSA ("oth") is not supported and must not be half-imported."""
    jwk = dict(key_for("RS256").export_private_jwk(), oth=[{"r": "AQ", "d": "AQ", "t": "AQ"}])
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(jwk)


# ---------------------------------------------------------------------------------------
# EC and Ed25519


def test_ec_point_not_on_curve_is_refused() -> None:
    """Invalid-curve points leak private keys in ECDH and make ECDSA checks meaningless."""
    jwk = key_for("ES256").to_public_jwk()
    y = int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "=="), "big")
    bad = dict(jwk, y=b64_uint((y + 1) % 2**256, 32))
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(bad)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(dict(jwk, x=b64(bytes(32)), y=b64(bytes(32))))


@pytest.mark.parametrize(
    ("curve", "alg"),
    [
        ("ES256", "ES384"),
        ("ES256", "ES512"),
        ("ES384", "ES256"),
        ("ES512", "ES256"),
        ("ES256", "RS256"),
        ("ES256", "EdDSA"),
        ("ES256", "HS256"),
    ],
)
def test_ec_key_with_mismatched_alg_is_refused(curve: str, alg: str) -> None:
    """Each EC curve has exactly one JWS algorithm (RFC 7518 §3.4); no other may be pinned."""
    signing = key_for(curve)
    jwk = signing.to_public_jwk()
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk, alg=alg)
    without_alg = {k: v for k, v in jwk.items() if k != "alg"}
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(dict(without_alg, alg=alg))
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(without_alg, alg=alg)


def test_ec_jwk_with_crv_not_matching_coordinates_is_refused() -> None:
    """A P-256 point labelled P-384 has coordinates of the wrong length and is refused."""
    jwk = key_for("ES256").to_public_jwk()
    jwk = {k: v for k, v in jwk.items() if k not in ("alg", "kid")}
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(dict(jwk, crv="P-384"))


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_pem_with_mismatched_alg_is_refused(curve: ec.EllipticCurve) -> None:
    """A PEM curve and an explicit alg that disagree mean a misconfiguration; refuse it."""
    private = ec.generate_private_key(curve)
    wrong = "ES384" if curve.name == "secp256r1" else "ES256"
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(private_pem(private), alg=wrong)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(public_pem(private), alg=wrong)


def test_ec_private_jwk_with_foreign_d_is_refused() -> None:
    """An EC private scalar that does not match x/y would produce unverifiable signatures."""
    jwk = key_for("ES256").export_private_jwk()
    other = SigningKey.generate("ES256").export_private_jwk()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(dict(jwk, d=other["d"]))


def test_ed25519_private_public_mismatch_is_refused() -> None:
    """An OKP JWK whose d and x disagree must not load: x is what verifiers will trust."""
    jwk = key_for("EdDSA").export_private_jwk()
    other = SigningKey.generate("EdDSA").export_private_jwk()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(dict(jwk, x=other["x"]))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"crv": "Ed448"}, id="ed448"),
        pytest.param({"crv": "X25519"}, id="x25519"),
        pytest.param({"x": b64(bytes(31))}, id="short-x"),
        pytest.param({"x": "not+base64url"}, id="bad-base64"),
        pytest.param({"x": 1}, id="x-int"),
        pytest.param({"alg": "ES256"}, id="wrong-alg"),
    ],
)
def test_okp_jwk_problems_are_refused(change: dict[str, Any]) -> None:
    """Only well-formed Ed25519 OKP keys are supported; everything else fails loudly."""
    jwk = {**key_for("EdDSA").to_public_jwk(), **change}
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)


@pytest.mark.parametrize(
    "private",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), id="secp256k1"),
        pytest.param(ed448.Ed448PrivateKey.generate, id="ed448"),
    ],
)
def test_unsupported_key_types_from_pem_are_refused(private: Any) -> None:
    """Curves outside the allow-list have no JWS algorithm here and must not load."""
    key = private()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(private_pem(key))
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(public_pem(key))


# ---------------------------------------------------------------------------------------
# JWK use and key_ops


@pytest.mark.parametrize("use", ["enc", "", "SIG", 1])
def test_jwk_not_for_signatures_is_refused(use: Any) -> None:
    """RFC 7517 §4.2: a key published for encryption must not be used to verify tokens."""
    public = dict(key_for("ES256").to_public_jwk(), use=use)
    private = dict(key_for("ES256").export_private_jwk(), use=use)
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(public)
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(private)


@pytest.mark.parametrize(
    ("key_ops", "private"),
    [
        (["encrypt", "decrypt"], False),
        (["encrypt", "decrypt"], True),
        (["wrapKey"], False),
        ([], False),
        (["verify"], True),
        (["sign"], False),
        ("verify", False),
        (["verify", "verify"], False),
        ([1], False),
    ],
)
def test_jwk_key_ops_without_the_needed_operation_is_refused(key_ops: Any, private: bool) -> None:
    """RFC 7517 §4.3: key_ops restricts what a key may do; sjti honours the restriction."""
    if private:
        with pytest.raises(InvalidKeyError):
            SigningKey.from_jwk(dict(key_for("EdDSA").export_private_jwk(), key_ops=key_ops))
    else:
        with pytest.raises(InvalidKeyError):
            VerifyingKey.from_jwk(dict(key_for("EdDSA").to_public_jwk(), key_ops=key_ops))


def test_jwk_key_ops_allowing_the_operation_is_accepted() -> None:
    """Keys that do declare sign/verify must keep working."""
    private = dict(key_for("EdDSA").export_private_jwk(), key_ops=["sign", "verify"])
    public = dict(key_for("EdDSA").to_public_jwk(), key_ops=["verify"])
    claims = verify(VerifyingKey.from_jwk(public), issue(SigningKey.from_jwk(private)))
    assert claims["aud"] == AUDIENCE


# ---------------------------------------------------------------------------------------
# JWK import shape


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param([], id="not-object"),
        pytest.param({}, id="no-kty"),
        pytest.param({"kty": "DSA"}, id="unknown-kty"),
        pytest.param({"kty": "oct", "k": b64(bytes(32))}, id="oct-without-alg"),
        pytest.param({"kty": "oct", "k": b64(bytes(32)), "alg": "RS256"}, id="oct-rs256"),
        pytest.param({"kty": "oct", "k": b64(bytes(32)), "alg": 256}, id="alg-not-str"),
        pytest.param(
            {"kty": "oct", "k": b64(bytes(32)), "alg": "HS256", "kid": ""}, id="kid-empty"
        ),
        pytest.param({"kty": "oct", "k": b64(bytes(32)), "alg": "HS256", "kid": 1}, id="kid-int"),
        pytest.param(
            {"kty": "oct", "k": b64(bytes(32)), "alg": "HS256", "kid": "k" * 257}, id="kid-long"
        ),
        pytest.param({"kty": "oct", "k": b64(bytes(32)) + "=", "alg": "HS256"}, id="k-padded"),
    ],
)
def test_malformed_jwk_is_refused(jwk: Any) -> None:
    """A JWK is validated once at import; a bad one never becomes a key."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(jwk)


def test_rsa_jwk_needs_an_algorithm() -> None:
    """An RSA key fits six algorithms; guessing one is how alg confusion starts."""
    jwk = {k: v for k, v in key_for("RS256").to_public_jwk().items() if k != "alg"}
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)
    assert VerifyingKey.from_jwk(jwk, alg="PS384").alg == "PS384"


def test_jwk_alg_argument_must_agree_with_member() -> None:
    """An explicit alg that contradicts the JWK's own alg is a misconfiguration."""
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(key_for("RS256").to_public_jwk(), alg="PS256")


def test_signing_key_from_public_jwk_is_refused() -> None:
    """A public JWK cannot sign; loading it as a SigningKey must say so at once."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(key_for("ES256").to_public_jwk())


# ---------------------------------------------------------------------------------------
# JWK export


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_public_export_never_contains_private_members(alg: str) -> None:
    """A JWKS is published to the world: no private or secret member may ever appear in it."""
    key = key_for(alg)
    if key.verifying_key.is_symmetric:
        with pytest.raises(InvalidKeyError):
            key.to_public_jwk()
        with pytest.raises(InvalidKeyError):
            key.verifying_key.to_jwk()
        return
    jwk = key.to_public_jwk()
    assert set() == PRIVATE_MEMBERS & set(jwk)
    assert (alg, key.kid, "sig") == (jwk["alg"], jwk["kid"], jwk["use"])


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_verifying_key_from_private_jwk_drops_private_members(alg: str) -> None:
    """Loading a private JWK for verification must not carry d & co. into later exports."""
    key = VerifyingKey.from_jwk(key_for(alg).export_private_jwk())
    assert set() == PRIVATE_MEMBERS & set(key.to_jwk())


def test_jwks_never_contains_private_members_or_secrets() -> None:
    """to_jwks over every algorithm leaves HMAC keys out and leaks no private value."""
    keys = [key_for(alg) for alg in ALGORITHMS]
    jwks = KeySet(verify_only=keys).to_jwks()
    text = json.dumps(jwks)
    published = {jwk["kid"] for jwk in jwks["keys"]}
    assert {k.kid for k in keys if not k.alg.startswith("HS")} == published
    for jwk in jwks["keys"]:
        assert set() == PRIVATE_MEMBERS & set(jwk)
    for key in keys:
        for name, value in key.export_private_jwk().items():
            if name in PRIVATE_MEMBERS:
                assert value not in text


def test_jwks_of_set_loaded_from_private_jwks_has_no_private_members() -> None:
    """Even a set built from private JWKs publishes only public members."""
    private = {"keys": [key_for(a).export_private_jwk() for a in ("ES256", "EdDSA", "RS256")]}
    jwks = KeySet.from_jwks(private).to_jwks()
    for jwk in jwks["keys"]:
        assert set() == PRIVATE_MEMBERS & set(jwk)


def test_exported_jwk_is_a_copy() -> None:
    """Editing an exported JWK must not change the key that produced it."""
    key = key_for("ES256")
    key.to_public_jwk()["x"] = "tampered"
    key.export_private_jwk()["d"] = "tampered"
    assert "tampered" not in key.to_public_jwk().values()
    assert "tampered" not in key.export_private_jwk().values()


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_private_jwk_roundtrip(alg: str) -> None:
    """A key exported and imported again is the same key: same kid, interchangeable tokens."""
    original = key_for(alg)
    imported = SigningKey.from_jwk(original.export_private_jwk())
    assert (original.kid, original.alg) == (imported.kid, imported.alg)
    assert verify(imported, issue(original))["sub"] == "user-1"
    assert verify(original, issue(imported))["sub"] == "user-1"
    if not imported.verifying_key.is_symmetric:
        public = VerifyingKey.from_jwk(original.to_public_jwk())
        assert public.kid == original.kid
        verify(public, issue(original))


# ---------------------------------------------------------------------------------------
# PEM


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        pytest.param(ed25519.Ed25519PrivateKey.generate, "EdDSA", id="ed25519"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", id="p256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES384", id="p384"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP521R1()), "ES512", id="p521"),
    ],
)
def test_pem_load_infers_alg_for_ec_and_ed25519(make: Any, alg: str) -> None:
    """EC curves and Ed25519 fix their algorithm, so private and public PEM load alike."""
    private = make()
    signing = SigningKey.from_pem(private_pem(private))
    public = VerifyingKey.from_pem(public_pem(private))
    assert (alg, alg) == (signing.alg, public.alg)
    assert signing.kid == public.kid
    verify(public, issue(signing))


def test_rsa_pem_needs_alg() -> None:
    """An RSA PEM says nothing about PKCS#1 v1.5 vs PSS or the hash; the caller must."""
    private = rsa_key(2048)
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(private_pem(private))
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(public_pem(private))
    signing = SigningKey.from_pem(private_pem(private), alg="RS256")
    public = VerifyingKey.from_pem(public_pem(private), alg="RS256")
    assert signing.kid == public.kid
    verify(public, issue(signing))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "HS256"])
def test_rsa_pem_with_non_rsa_alg_is_refused(alg: str) -> None:
    """An RSA key pinned to a non-RSA algorithm is a misconfiguration."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(private_pem(rsa_key(2048)), alg=alg)


def test_traditional_and_encrypted_rsa_pem() -> None:
    """PKCS#1 and password-protected PEM load; a wrong or missing password is InvalidKeyError."""
    private = rsa_key(2048)
    traditional = private.private_bytes(
        PEM, serialization.PrivateFormat.TraditionalOpenSSL, NO_PASSWORD
    )
    encrypted = private.private_bytes(
        PEM, PKCS8, serialization.BestAvailableEncryption(b"correct horse")
    )
    kid = SigningKey.from_pem(traditional, alg="RS256").kid
    assert kid == SigningKey.from_pem(encrypted, alg="RS256", password=b"correct horse").kid
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(encrypted, alg="RS256", password=b"wrong")
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(encrypted, alg="RS256")


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(b"", id="empty"),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", id="junk"
        ),
        pytest.param(b"\x00" * 64, id="binary"),
    ],
)
def test_garbage_pem_is_refused(pem: bytes) -> None:
    """Unparseable PEM is an InvalidKeyError, never a raw cryptography exception."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(pem, alg="RS256")
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(pem, alg="RS256")


def test_public_pem_cannot_be_a_signing_key_and_vice_versa() -> None:
    """The two loaders must not silently accept the other half of a key pair."""
    private = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(public_pem(private))
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_pem(private_pem(private))


@pytest.mark.parametrize("kid", ["", "k" * 257])
def test_explicit_kid_must_be_sane(kid: str) -> None:
    """An empty or oversized kid is refused at load time, not discovered in a header."""
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(private_pem(ed25519.Ed25519PrivateKey.generate()), kid=kid)


# ---------------------------------------------------------------------------------------
# kid = RFC 7638 thumbprint


def test_kid_defaults_to_rfc7638_thumbprint_rsa_vector() -> None:
    """RFC 7638 §3.1: the published thumbprint is the kid of the published RSA key."""
    vector = json.loads((VECTORS / "rfc7638.json").read_text())["vectors"][0]
    jwk = {k: v for k, v in vector["jwk"].items() if k != "kid"}
    assert vector["thumbprint"] == VerifyingKey.from_jwk(jwk).kid


def test_kid_defaults_to_rfc7638_thumbprint_ed25519_vector() -> None:
    """RFC 8037 A.3: the published Ed25519 thumbprint is the kid of the A.1/A.2 key."""
    vector = json.loads((VECTORS / "rfc8037.json").read_text())["vectors"][0]
    assert vector["thumbprint"] == VerifyingKey.from_jwk(vector["public_jwk"]).kid
    assert vector["thumbprint"] == SigningKey.from_jwk(vector["jwk"]).kid


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_generated_kid_is_thumbprint_of_required_members(alg: str) -> None:
    """Recomputing RFC 7638 independently gives each generated key's kid."""
    jwk = key_for(alg).export_private_jwk()
    required = {"oct": ("k",), "RSA": ("e", "n"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
    members = {name: jwk[name] for name in (*required[jwk["kty"]], "kty")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    assert b64(hashlib.sha256(canonical).digest()) == key_for(alg).kid


def test_explicit_kid_is_kept() -> None:
    """A kid given on import (or in the JWK) wins over the thumbprint."""
    jwk = dict(key_for("ES256").to_public_jwk(), kid="2024-rotation")
    assert VerifyingKey.from_jwk(jwk).kid == "2024-rotation"
    assert SigningKey.from_secret(bytes(32), kid="mine").kid == "mine"


# ---------------------------------------------------------------------------------------
# KeySet and rotation


def test_rotation_keeps_old_tokens_valid_and_signs_with_new_kid() -> None:
    """Rotating the signing key must not log anyone out; new tokens carry the new kid."""
    old = SigningKey.generate("HS256", kid="old")
    new = SigningKey.generate("HS256", kid="new")
    before = KeySet(old)
    old_token = issue(before)
    after = before.rotate(new)
    new_token = issue(after)
    assert (header_kid(old_token), header_kid(new_token)) == ("old", "new")
    assert after.active is new
    assert verify(after, old_token)["sub"] == "user-1"
    assert verify(after, new_token)["sub"] == "user-1"
    assert before.active is old  # rotate returns a new set
    with pytest.raises(UnknownKeyError):
        verify(before, new_token)


def test_rotation_keep_bounds_how_many_old_keys_verify() -> None:
    """Old keys drop out after ``keep`` rotations, so retired keys stop verifying."""
    k1, k2, k3 = (SigningKey.generate("HS256", kid=f"k{i}") for i in (1, 2, 3))
    token_1 = issue(k1)
    assert [k.kid for k in KeySet(k1).rotate(k2).rotate(k3)] == ["k3", "k2"]
    with pytest.raises(UnknownKeyError):
        verify(KeySet(k1).rotate(k2).rotate(k3), token_1)
    verify(KeySet(k1).rotate(k2).rotate(k3, keep=2), token_1)


def test_key_set_refuses_duplicate_kids() -> None:
    """Two keys under one kid make key selection ambiguous; refuse the set."""
    a = SigningKey.generate("HS256", kid="same")
    b = SigningKey.generate("HS256", kid="same")
    with pytest.raises(InvalidKeyError):
        KeySet(a, verify_only=[b])
    with pytest.raises(InvalidKeyError):
        KeySet(verify_only=[a.verifying_key, b.verifying_key])


@pytest.mark.parametrize("clash", ["active", "verify-only"])
def test_rotate_refuses_a_new_key_with_an_existing_kid(clash: str) -> None:
    """Rotating to a different key under a kid already in the set must be refused.

    Otherwise tokens signed by the key that held the kid either crash the rotation or
    silently stop verifying.
    """
    active = SigningKey.generate("HS256", kid="a")
    retired = SigningKey.generate("HS256", kid="r")
    keys = KeySet(active, verify_only=[retired])
    impostor = SigningKey.generate("HS256", kid="a" if clash == "active" else "r")
    with pytest.raises(InvalidKeyError):
        keys.rotate(impostor, keep=2)


def test_verify_only_set_has_no_active_key() -> None:
    """A boundary-only set (public keys) cannot sign; asking it to is a configuration error."""
    keys = KeySet(verify_only=[key_for("EdDSA").verifying_key])
    assert not keys.has_signing_key
    with pytest.raises(InvalidKeyError):
        _ = keys.active
    with pytest.raises(InvalidKeyError):
        Issuer(keys, issuer=ISSUER, audience=AUDIENCE)


def test_empty_key_set_is_refused() -> None:
    """A set with no key can verify nothing; that is a configuration error, not an empty JWKS."""
    with pytest.raises(InvalidKeyError):
        KeySet()


# ---------------------------------------------------------------------------------------
# from_jwks


def _oct_jwk(kid: str) -> dict[str, Any]:
    return {"kty": "oct", "k": b64(bytes(range(32))), "alg": "HS256", "kid": kid}


@pytest.mark.parametrize(
    "jwks",
    [
        pytest.param(
            lambda: {"keys": [_oct_jwk("s"), key_for("EdDSA").to_public_jwk()]},
            id="mixed-symmetric-asymmetric",
        ),
        pytest.param(
            lambda: {
                "keys": [key_for("EdDSA").to_public_jwk(), key_for("ES256").export_private_jwk()]
            },
            id="mixed-public-private",
        ),
        pytest.param(
            lambda: {
                "keys": [
                    dict(key_for("EdDSA").to_public_jwk(), kid="dup"),
                    dict(key_for("ES256").to_public_jwk(), kid="dup"),
                ]
            },
            id="duplicate-kid",
        ),
        pytest.param(lambda: {"keys": [key_for("EdDSA").to_public_jwk()] * 2}, id="same-key-twice"),
        pytest.param(
            lambda: {
                "keys": [
                    {k: v for k, v in key_for("EdDSA").to_public_jwk().items() if k != "kid"},
                    key_for("ES256").to_public_jwk(),
                ]
            },
            id="missing-kid-in-multi-key-set",
        ),
        pytest.param(lambda: {"keys": []}, id="empty"),
        pytest.param(lambda: {"keys": {}}, id="keys-not-list"),
        pytest.param(dict, id="no-keys"),
        pytest.param(list, id="not-object"),
        pytest.param(lambda: "{not json", id="not-json"),
        pytest.param(lambda: {"keys": ["x"]}, id="entry-not-object"),
        pytest.param(
            lambda: {"keys": [dict(key_for("EdDSA").to_public_jwk(), use="enc")]}, id="use-enc"
        ),
    ],
)
def test_from_jwks_refuses_ambiguous_or_invalid_sets(jwks: Any) -> None:
    """An ambiguous JWKS could make the boundary trust the wrong key; refuse it whole."""
    with pytest.raises(InvalidKeyError):
        KeySet.from_jwks(jwks())


@pytest.mark.parametrize("encode", [lambda j: j, json.dumps, lambda j: json.dumps(j).encode()])
def test_from_jwks_accepts_published_set(encode: Any) -> None:
    """What to_jwks publishes, from_jwks loads (as dict, str or bytes) and it verifies tokens."""
    signing = key_for("ES256")
    published = KeySet(signing, verify_only=[key_for("EdDSA")]).to_jwks()
    keys = KeySet.from_jwks(encode(published))
    assert {signing.kid, key_for("EdDSA").kid} == {k.kid for k in keys}
    assert not keys.has_signing_key
    verify(keys, issue(signing))


def test_from_jwks_key_verifies_only_its_own_signatures() -> None:
    """A token from a key not in the JWKS is refused by kid, not by luck."""
    keys = KeySet.from_jwks(KeySet(key_for("EdDSA")).to_jwks())
    with pytest.raises(UnknownKeyError):
        verify(keys, issue(SigningKey.generate("EdDSA")))
    other = SigningKey.from_jwk(
        {k: v for k, v in SigningKey.generate("EdDSA").export_private_jwk().items() if k != "kid"}
        | {"kid": key_for("EdDSA").kid}
    )
    with pytest.raises(InvalidSignatureError):
        verify(keys, issue(other))


# ---------------------------------------------------------------------------------------
# repr


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_key_repr_shows_no_secret(alg: str) -> None:
    """Keys end up in logs and tracebacks; their repr must name them, never reveal them."""
    key = key_for(alg)
    texts = [repr(key), str(key), repr(key.verifying_key), repr(KeySet(key))]
    secrets = [v for n, v in key.export_private_jwk().items() if n in PRIVATE_MEMBERS]
    assert secrets
    for text in texts:
        assert key.kid in text or text.startswith("KeySet")
        for secret in secrets:
            assert secret not in text


def test_user_key_repr_shows_no_secret() -> None:
    """The user's token secret must never reach a log line through repr or str."""
    secret = bytes(range(1, 33))
    key = UserKey(secret)
    for text in (repr(key), str(key), f"{key!r}"):
        for form in (secret.hex(), b64(secret), repr(secret), str(list(secret))):
            assert form not in text


def test_rfc9864_ed25519_name_is_its_own_pinned_algorithm() -> None:
    """RFC 9864's "Ed25519" works, and a key pinned to it refuses "EdDSA" headers (and back)."""
    new_name = SigningKey.generate("Ed25519")
    assert new_name.alg == "Ed25519"
    jwk = new_name.to_public_jwk()
    assert VerifyingKey.from_jwk(jwk).alg == "Ed25519"
    legacy = VerifyingKey.from_jwk({k: v for k, v in jwk.items() if k != "alg"})
    assert legacy.alg == "EdDSA"
    header = encode_header(new_name)
    token = sign_compact(header, b"{}", new_name)
    assert CompactVerifier(KeySet(new_name)).verify(token)[1] == b"{}"
    with pytest.raises(AlgorithmNotAllowedError):
        CompactVerifier(KeySet(verify_only=[legacy])).verify(token)


def test_from_jwks_default_alg_pins_only_keys_without_alg_of_that_type() -> None:
    """Providers that omit alg on RSA keys can be used, without loosening any other key."""
    rsa_jwk = {k: v for k, v in key_for("RS256").to_public_jwk().items() if k != "alg"}
    ec_jwk = {k: v for k, v in key_for("ES256").to_public_jwk().items() if k != "alg"}
    with pytest.raises(InvalidKeyError):
        KeySet.from_jwks({"keys": [rsa_jwk, ec_jwk]})
    keys = KeySet.from_jwks({"keys": [rsa_jwk, ec_jwk]}, default_alg="PS256")
    assert sorted(k.alg for k in keys) == ["ES256", "PS256"]
