"""Key material at its edges: generated sizes, exact JWK exports, RSA and EC import limits.

The key tests elsewhere check that bad keys are refused; these pin what good keys look
like (an RSA key is 3072 bits with e = 65537, a private JWK carries exactly its CRT
members) and each numeric limit on both sides (RSA exponents 3 and n, a 256-character
kid, coordinates of exactly the curve's size).
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sjti import InvalidKeyError, KeySet, SigningKey, VerifyingKey
from sjti._core.codec import b64url_decode, b64url_encode
from sjti._core.keys import _powers

from ..conftest import key_for


def b64(value: int | bytes) -> str:
    raw = value if isinstance(value, bytes) else value.to_bytes((value.bit_length() + 7) // 8)
    return b64url_encode(raw).decode()


def number(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


RSA_JWK = key_for("RS256").export_private_jwk()
N = number(RSA_JWK["n"])


# ---------------------------------------------------------------------------------------
# generated keys


def test_generated_rsa_keys_are_3072_bits_with_e_65537() -> None:
    """NIST's 128-bit level for keys that may live for years; e = 65537 as everyone uses."""
    key = SigningKey.generate("PS256", kid="rsa")
    public = key.to_public_jwk()
    assert (key.alg, key.kid, public["kty"]) == ("PS256", "rsa", "RSA")
    assert number(public["n"]).bit_length() == 3072
    assert number(public["e"]) == 65537
    assert key.verifying_key.verify(b"m", key.sign(b"m"))


@pytest.mark.parametrize(
    ("alg", "curve"), [("ES256", "P-256"), ("ES384", "P-384"), ("ES512", "P-521")]
)
def test_generated_ec_keys_are_on_the_algorithms_curve(alg: str, curve: str) -> None:
    """ES512 means P-521; the curve is fixed by the algorithm, never chosen separately."""
    key = SigningKey.generate(alg, kid="ec")
    assert (alg, "ec", curve) == (key.alg, key.kid, key.to_public_jwk()["crv"])


def test_generated_hmac_key_keeps_an_explicit_kid() -> None:
    """kid= is honoured for every key type (rotation relies on it)."""
    assert SigningKey.generate("HS512", kid="hmac-1").kid == "hmac-1"
    assert SigningKey.generate("EdDSA", kid="ed-1").kid == "ed-1"


def test_pem_loading_keeps_an_explicit_kid() -> None:
    """A key loaded from PEM takes the kid it is given, not its thumbprint."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert VerifyingKey.from_pem(pem, kid="named").kid == "named"


def test_key_reprs_name_the_class_alg_and_kid() -> None:
    """A repr says what the key is for, and nothing secret."""
    key = SigningKey.from_secret(bytes(32), kid="k")
    assert repr(key) == "SigningKey(alg='HS256', kid='k')"
    assert repr(key.verifying_key) == "VerifyingKey(alg='HS256', kid='k')"


def test_hmac_private_jwk_is_exact() -> None:
    """The exported secret JWK has exactly kty, k, kid and alg."""
    jwk = SigningKey.from_secret(bytes(32), kid="k").export_private_jwk()
    assert {"kty": "oct", "k": b64(bytes(32)), "kid": "k", "alg": "HS256"} == jwk


# ---------------------------------------------------------------------------------------
# RSA private JWKs: with and without the CRT members


def test_rsa_private_jwk_exports_exactly_the_private_numbers() -> None:
    """d, p, q, dp, dq, qi as RFC 7518 §6.3.2 names them, from the key itself."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jwk = SigningKey.from_pem(pem, alg="RS256").export_private_jwk()
    numbers = private.private_numbers()
    expected = {
        "d": numbers.d,
        "p": numbers.p,
        "q": numbers.q,
        "dp": numbers.dmp1,
        "dq": numbers.dmq1,
        "qi": numbers.iqmp,
    }
    assert expected == {name: number(jwk[name]) for name in expected}
    assert {"kty", "n", "e", "kid", "alg", "use", *expected} == set(jwk)


@pytest.mark.parametrize("kept", ["all", "d-only"])
def test_rsa_private_jwk_imports_with_or_without_crt_members(kept: str) -> None:
    """The CRT members are optional (RFC 7518 §6.3.2): recovered from d when absent."""
    jwk = dict(RSA_JWK)
    if kept == "d-only":
        for name in ("p", "q", "dp", "dq", "qi"):
            del jwk[name]
    key = SigningKey.from_jwk(jwk)
    exported = key.export_private_jwk()
    assert {name: RSA_JWK[name] for name in ("d", "p", "q", "dp", "dq", "qi")} == {
        name: exported[name] for name in ("d", "p", "q", "dp", "dq", "qi")
    }
    assert key_for("RS256").verifying_key.verify(b"m", key.sign(b"m"))


def test_rsa_private_jwk_with_some_crt_members_recovers_the_rest() -> None:
    """Only a complete CRT set is used as given; a partial one is recomputed from d."""
    jwk = dict(RSA_JWK)
    del jwk["qi"]
    jwk["p"] = "AQ"  # wrong, but ignored: the set is incomplete
    key = SigningKey.from_jwk(jwk)
    assert RSA_JWK["p"] in (key.export_private_jwk()["p"], key.export_private_jwk()["q"])


@pytest.mark.parametrize("member", ["p", "q", "dp", "dq", "qi"])
def test_a_complete_but_inconsistent_crt_set_is_refused(member: str) -> None:
    """A full CRT set is used as given and checked, never silently recomputed from d."""
    jwk = dict(RSA_JWK)
    jwk[member] = RSA_JWK["q" if member == "p" else "p" if member == "q" else "dp"]
    if member == "dp":
        jwk[member] = b64(number(RSA_JWK["dp"]) + 2)
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(jwk)


# ---------------------------------------------------------------------------------------
# RSA public exponents and kids


def rsa_public(e: int, n: int = N) -> dict[str, Any]:
    return {"kty": "RSA", "n": b64(n), "e": b64(e), "alg": "RS256"}


@pytest.mark.parametrize("e", [3, 5, 17, 65537])
def test_small_odd_rsa_exponents_from_3_are_accepted(e: int) -> None:
    """e = 3 is safe with proper padding (RFC 8017); the floor is 3, not 4."""
    key = VerifyingKey.from_jwk(rsa_public(e))
    assert key.alg == "RS256"
    assert key.to_jwk()["e"] == b64(e)  # minimal big-endian bytes: "Aw" for 3


@pytest.mark.parametrize("e", [1, 2, 4, 65536, N, N + 2])
def test_rsa_exponents_that_are_even_below_3_or_not_below_n_are_refused(e: int) -> None:
    """e = 1 signs nothing, an even e is not invertible, e >= n is not a valid key."""
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(rsa_public(e))


def test_a_kid_of_256_characters_is_accepted() -> None:
    """256 is the documented maximum, inclusive."""
    assert len(SigningKey.from_secret(bytes(32), kid="k" * 256).kid) == 256


def test_roca_fingerprint_uses_the_full_subgroup_generated_by_65537() -> None:
    """_powers(g, p) is the set {g^k mod p}: the ROCA test is only as good as this set."""
    for p in (3, 5, 7, 11, 13, 17, 167):
        assert frozenset(pow(65537, k, p) for k in range(p)) == _powers(65537, p)


# ---------------------------------------------------------------------------------------
# JWK usage and shape


def test_a_symmetric_jwk_for_signing_also_verifies() -> None:
    """key_ops ["sign"] on a shared secret implies verify: both sides hold the same key."""
    jwk = {"kty": "oct", "k": b64(bytes(32)), "alg": "HS256", "key_ops": ["sign"]}
    assert VerifyingKey.from_jwk(jwk).alg == "HS256"


def test_a_public_jwk_for_signing_only_cannot_verify() -> None:
    """key_ops ["sign"] on a public key grants nothing a verifier may use."""
    jwk = dict(key_for("ES256").to_public_jwk(), key_ops=["sign"])
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)


def test_members_foreign_to_an_rsa_key_are_ignored() -> None:
    """A crv on an RSA key means nothing (RFC 7517 §4: ignore what you do not use)."""
    assert VerifyingKey.from_jwk({**rsa_public(65537), "crv": 5}).alg == "RS256"


@pytest.mark.parametrize("member", ["x", "y"])
def test_ec_coordinates_must_have_exactly_the_curves_size(member: str) -> None:
    """A coordinate with a leading zero byte is a second spelling of the same key."""
    jwk = dict(key_for("ES256").to_public_jwk())
    jwk[member] = b64(b"\x00" + b64url_decode(jwk[member]))
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)


def test_ec_private_scalar_must_have_exactly_the_curves_size() -> None:
    """The same rule for d (RFC 7518 §6.2.2.1: the full length, leading zeros kept)."""
    jwk = key_for("ES256").export_private_jwk()
    jwk["d"] = b64(b"\x00" + b64url_decode(jwk["d"]))
    with pytest.raises(InvalidKeyError):
        SigningKey.from_jwk(jwk)


# ---------------------------------------------------------------------------------------
# key sets from a JWKS, and rotation


def public(alg: str, **changes: Any) -> dict[str, Any]:
    jwk = dict(key_for(alg).to_public_jwk(), **changes)
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize("keys", [5, True, "keys", {"kty": "oct"}])
def test_a_jwks_whose_keys_is_not_a_list_is_refused(keys: Any) -> None:
    """Whatever a provider serves under "keys", only a list of objects is read."""
    with pytest.raises(InvalidKeyError):
        KeySet.from_jwks({"keys": keys})


def test_a_jwks_of_one_key_without_kid_is_usable() -> None:
    """With one key there is nothing to choose: no kid needed (its thumbprint is used)."""
    [key] = KeySet.from_jwks({"keys": [public("ES256", kid=None)]})
    assert key_for("ES256").kid == key.kid


def test_default_alg_never_overrides_a_keys_own_alg() -> None:
    """default_alg fills in a missing alg only; PS256 stays PS256 under default RS256."""
    keys = KeySet.from_jwks({"keys": [public("PS256")]}, default_alg="RS256")
    assert [key.alg for key in keys] == ["PS256"]


def test_a_stray_k_does_not_make_a_public_ec_key_private() -> None:
    """Only d, p, q, ... mark an asymmetric JWK private; k belongs to oct keys."""
    jwks = {"keys": [public("ES256", k="AAAA"), public("ES384")]}
    assert len(KeySet.from_jwks(jwks)) == 2


def test_public_and_private_are_judged_on_asymmetric_keys_only() -> None:
    """Shared secrets are neither public nor private JWKs: a stray d on one changes nothing."""
    secret = {"kty": "oct", "k": b64(bytes(32)), "alg": "HS256"}
    jwks = {"keys": [dict(secret, kid="a"), dict(secret, kid="b", d="AAAA")]}
    assert [key.kid for key in KeySet.from_jwks(jwks)] == ["a", "b"]


def test_rotating_a_verify_only_set_keeps_its_keys_for_verification() -> None:
    """A set that could only verify gains a signing key and keeps verifying old tokens."""
    old = key_for("ES256").verifying_key
    new = SigningKey.from_secret(bytes(32), kid="new")
    rotated = KeySet(verify_only=[old]).rotate(new)
    assert rotated.active.kid == "new"
    assert {k.kid for k in rotated} == {old.kid, "new"}


@pytest.mark.parametrize("member", ["x", "y", "d"])
def test_ec_exports_keep_leading_zero_bytes(member: str) -> None:
    """x, y and d are written at the curve's full size (66 bytes for P-521), never trimmed.

    Half of all P-521 values fit in 65 bytes, so a trimming exporter fails at once.
    """
    for _ in range(200):
        private = ec.generate_private_key(ec.SECP521R1())
        numbers = private.private_numbers()
        value = {"x": numbers.public_numbers.x, "y": numbers.public_numbers.y}.get(
            member, numbers.private_value
        )
        if value < 2 ** (8 * 65):
            break
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jwk = SigningKey.from_pem(pem).export_private_jwk()
    assert len(b64url_decode(jwk[member])) == 66
    assert number(jwk[member]) == value


def test_an_ec_jwk_on_an_unknown_curve_without_alg_is_refused() -> None:
    """No alg and a curve we do not support: InvalidKeyError, not a lookup crash."""
    jwk = {"kty": "EC", "crv": "secp256k1", "x": b64(bytes(32)), "y": b64(bytes(32))}
    with pytest.raises(InvalidKeyError):
        VerifyingKey.from_jwk(jwk)
