"""What the bench times: one token, one claim set and one HS256 secret for every library.

The sjti :class:`~sjti.Issuer` makes the token; the peers decode that very token and encode
the very same claims, under the same secret. Each case is run once before any timing and
its result checked (the claims must be the token's claims, a forged, foreign or expired
token must be refused), so a case that skips work cannot post a fast number.
"""

from __future__ import annotations

import base64
import copy
import functools
import hmac
import importlib
import json
import secrets
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .. import BoundaryVerifier, ClaimsPolicy, Issuer, SigningKey, UserKey, UserVerifier

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "Case",
    "CaseError",
    "Check",
    "Fixture",
    "Group",
    "Kind",
    "build_cases",
    "expect_claims",
    "make_fixture",
    "minimal_verify",
    "precheck",
]

ISSUER: Final = "https://auth.example.com"
AUDIENCE: Final = "https://api.example.com"
SUBJECT: Final = "user-4f1c2d9a"
# The Issuer sets iss, sub, aud, exp, iat, jti and sjti itself (and reserves nbf), so the
# two application claims below bring the token to nine claims, as an RFC 9068 token has.
EXTRA_CLAIMS: Final[Mapping[str, Any]] = {
    "scope": "openid profile orders:read orders:write",
    "client_id": "bench-client",
}
TTL: Final = 24 * 3600  # far enough ahead that no run outlives the token
TYP: Final = "at+jwt"
ASYMMETRIC: Final = ("EdDSA", "ES256", "RS256")

Group = Literal["sjti", "peer", "floor"]
Kind = Literal["verify", "sign"]
Check = Callable[[object], str | None]


class CaseError(Exception):
    """A case returned a wrong result or accepted a bad token: it is never timed."""


@dataclass(frozen=True, slots=True)
class Case:
    """One timed operation, with what it must return and what it must refuse."""

    name: str
    group: Group
    kind: Kind
    fn: Callable[[], object]
    check: Check
    must_reject: tuple[tuple[str, Callable[[], object]], ...] = ()


def precheck(case: Case) -> None:
    """Run ``case`` once and raise :class:`CaseError` unless it behaves."""
    try:
        result = case.fn()
    except Exception as exc:
        raise CaseError(f"{case.name}: raised {type(exc).__name__}: {exc}") from exc
    try:
        problem = case.check(result)
    except Exception as exc:  # e.g. the oracle or sjti refusing a token an encoder made
        raise CaseError(f"{case.name}: result refused: {type(exc).__name__}: {exc}") from exc
    if problem is not None:
        raise CaseError(f"{case.name}: {problem}")
    for what, call in case.must_reject:
        try:
            call()
        except Exception:  # noqa: S112 - any refusal will do; accepting is the failure
            continue
        raise CaseError(f"{case.name}: accepted {what}")


def expect_claims(expected: Mapping[str, Any]) -> Check:
    """A check that the result is exactly ``expected`` (a claims mapping)."""
    wanted = dict(expected)

    def check(result: object) -> str | None:
        if not isinstance(result, Mapping):
            return f"returned {type(result).__name__}, not the claims"
        if dict(result) != wanted:
            return "returned claims that differ from the token's"
        return None

    return check


# ---------------------------------------------------------------------------------------
# stdlib-only token handling: the oracle for checks, and the minimal-verify floor


def _b64decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def minimal_verify(token: str, secret: bytes) -> Any:
    """The hand-written minimal HS256 verify: split, HMAC, compare, decode, parse.

    Stdlib only, as one would write it inline. No header, claim, size or encoding checks:
    a floor to measure against, not a verifier.
    """
    signing_input, _, signature = token.encode("ascii").rpartition(b".")
    if not hmac.compare_digest(hmac.digest(secret, signing_input, "sha256"), _b64decode(signature)):
        raise ValueError("bad signature")
    return json.loads(_b64decode(signing_input.partition(b".")[2]))


def _segments(token: str | bytes) -> tuple[bytes, bytes, bytes]:
    raw = token.encode("ascii") if isinstance(token, str) else token
    header, payload, signature = raw.split(b".")
    return header, payload, signature


def _unverified(token: str | bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = _segments(token)
    return json.loads(_b64decode(header)), json.loads(_b64decode(payload))


def _oracle(token: str | bytes, secret: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of an HS256 token, checked with the stdlib only."""
    header, payload, signature = _segments(token)
    mac = hmac.digest(secret, header + b"." + payload, "sha256")
    if not hmac.compare_digest(mac, _b64decode(signature)):
        raise CaseError("token does not carry a valid HS256 signature")
    return _unverified(token)


def _forge(token: str) -> str:
    """The same token with the first signature character changed."""
    head, _, signature = token.rpartition(".")
    first = "B" if signature[0] == "A" else "A"
    return f"{head}.{first}{signature[1:]}"


# ---------------------------------------------------------------------------------------
# the fixture


@dataclass(frozen=True, slots=True)
class Fixture:
    """Keys, the token, its expected claims and the tokens every verifier must refuse."""

    secret: bytes
    hs_key: SigningKey
    user_key: UserKey
    policy: ClaimsPolicy
    issuer: Issuer
    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    bad_tokens: tuple[tuple[str, str], ...]
    asymmetric: dict[str, tuple[SigningKey, str]]
    ed25519_public: ed25519.Ed25519PublicKey


def _check_issued(header: Mapping[str, Any], claims: Mapping[str, Any], kid: str) -> str | None:
    """What is wrong with a token the sjti Issuer made for the bench, if anything."""
    fixed = {"iss": ISSUER, "sub": SUBJECT, "aud": AUDIENCE, **EXTRA_CLAIMS}
    names = {*fixed, "exp", "iat", "jti", "sjti"}
    if dict(header) != {"alg": header.get("alg"), "kid": kid, "typ": TYP}:
        return "unexpected header"
    if set(claims) != names:
        return "unexpected claim names"
    if any(claims[name] != value for name, value in fixed.items()):
        return "unexpected claim values"
    if claims["exp"] - claims["iat"] != TTL:
        return "unexpected lifetime"
    return None


def make_fixture() -> Fixture:
    """Fresh keys and tokens, issued now (by the system clock) for a day."""
    secret = secrets.token_bytes(32)
    hs_key = SigningKey.from_secret(secret)
    user_key = UserKey.generate()
    issuer = Issuer(hs_key, issuer=ISSUER, audience=AUDIENCE, ttl=TTL)
    token = issuer.issue(SUBJECT, user_key, claims=EXTRA_CLAIMS)
    header, claims = _oracle(token, secret)
    problem = _check_issued(header, claims, hs_key.kid)
    if problem is not None or header["alg"] != "HS256":
        raise CaseError(f"bench token: {problem or 'unexpected alg'}")

    other_audience = Issuer(hs_key, issuer=ISSUER, audience="https://other.example.com")
    expired = Issuer(hs_key, issuer=ISSUER, audience=AUDIENCE, ttl=60)
    bad_tokens = (
        ("a forged signature", _forge(token)),
        ("a token for another audience", other_audience.issue(SUBJECT, user_key)),
        (
            "an expired token",
            expired.issue(SUBJECT, user_key, now=claims["iat"] - 3600),
        ),
    )

    ed_private = ed25519.Ed25519PrivateKey.generate()
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    asymmetric_keys = {
        "EdDSA": SigningKey.from_pem(_pem(ed_private)),
        "ES256": SigningKey.generate("ES256"),
        "RS256": SigningKey.from_pem(_pem(rsa_private), alg="RS256"),
    }
    asymmetric = {}
    for alg, key in asymmetric_keys.items():
        signed = Issuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=TTL).issue(
            SUBJECT, user_key, claims=EXTRA_CLAIMS
        )
        asymmetric[alg] = (key, signed)

    return Fixture(
        secret=secret,
        hs_key=hs_key,
        user_key=user_key,
        policy=ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE),
        issuer=issuer,
        token=token,
        header=header,
        claims=claims,
        bad_tokens=bad_tokens,
        asymmetric=asymmetric,
        ed25519_public=ed_private.public_key(),
    )


def _pem(private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ---------------------------------------------------------------------------------------
# the cases


def _rejects(
    decode: Callable[[str], object], bad_tokens: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, Callable[[], object]], ...]:
    return tuple((what, functools.partial(decode, bad)) for what, bad in bad_tokens)


def _expect_token(fx: Fixture) -> Check:
    """A check for encoders: an HS256 token whose claims are exactly the bench claims."""

    def check(result: object) -> str | None:
        if not isinstance(result, str | bytes):
            return f"returned {type(result).__name__}, not a token"
        header, claims = _oracle(result, fx.secret)
        if header.get("alg") != "HS256":
            return "token header does not say HS256"
        if claims != fx.claims:
            return "token claims differ from the bench claims"
        return None

    return check


def _expect_issued(fx: Fixture, verifier: UserVerifier) -> Check:
    """A check for the issuer: a fresh token for the same subject that both layers accept."""

    def check(result: object) -> str | None:
        if not isinstance(result, str):
            return f"returned {type(result).__name__}, not a token"
        header, claims = _oracle(result, fx.secret)
        problem = _check_issued(header, claims, fx.hs_key.kid)
        if problem is not None:
            return problem
        if claims["jti"] == fx.claims["jti"]:
            return "jti was not fresh"
        verifier.verify(result, fx.user_key)
        return None

    return check


def _sjti_cases(fx: Fixture) -> list[Case]:
    boundary = BoundaryVerifier(fx.hs_key, fx.policy)
    full = UserVerifier(boundary)
    rotated = UserKey.generate()
    return [
        Case(
            "sjti.issue.HS256",
            "sjti",
            "sign",
            functools.partial(fx.issuer.issue, SUBJECT, fx.user_key, claims=EXTRA_CLAIMS),
            _expect_issued(fx, full),
        ),
        Case(
            "sjti.verify_boundary.HS256",
            "sjti",
            "verify",
            functools.partial(boundary.verify, fx.token),
            expect_claims(fx.claims),
            _rejects(boundary.verify, fx.bad_tokens),
        ),
        Case(
            "sjti.verify_full.HS256",
            "sjti",
            "verify",
            functools.partial(full.verify, fx.token, fx.user_key),
            expect_claims(fx.claims),
            (
                *_rejects(functools.partial(_full_verify, full, fx.user_key), fx.bad_tokens),
                (
                    "a token under a rotated user key",
                    functools.partial(full.verify, fx.token, rotated),
                ),
            ),
        ),
    ]


def _full_verify(verifier: UserVerifier, user_key: UserKey, token: str) -> object:
    return verifier.verify(token, user_key)


def _asymmetric_cases(fx: Fixture) -> list[Case]:
    cases = []
    for alg in ASYMMETRIC:
        key, token = fx.asymmetric[alg]
        boundary = BoundaryVerifier(key.verifying_key, fx.policy)
        cases.append(
            Case(
                f"sjti.verify_boundary.{alg}",
                "sjti",
                "verify",
                functools.partial(boundary.verify, token),
                expect_claims(_unverified(token)[1]),
                (("a forged signature", functools.partial(boundary.verify, _forge(token))),),
            )
        )
    return cases


def _floor_cases(fx: Fixture) -> list[Case]:
    ed_header, ed_payload, ed_signature = _segments(fx.asymmetric["EdDSA"][1])
    ed_input, ed_raw = ed_header + b"." + ed_payload, _b64decode(ed_signature)
    forged_ed = bytes([ed_raw[0] ^ 1]) + ed_raw[1:]
    hs_header, hs_payload, hs_signature = _segments(fx.token)
    hs_input, hs_raw = hs_header + b"." + hs_payload, _b64decode(hs_signature)

    def returns_none(result: object) -> str | None:
        return None if result is None else "returned a value"

    def is_signature(result: object) -> str | None:
        return None if result == hs_raw else "MAC differs from the token's signature"

    # The cheapest HMAC there is: the key schedule done once, the state copied per call
    # (stdlib hmac.digest re-keys every time and costs about twice as much).
    template = crypto_hmac.HMAC(fx.secret, hashes.SHA256())

    def one_hmac() -> bytes:
        mac = template.copy()
        mac.update(hs_input)
        return mac.finalize()

    forged = dict(fx.bad_tokens)["a forged signature"]
    return [
        Case(
            "floor.minimal_verify.HS256",
            "floor",
            "verify",
            functools.partial(minimal_verify, fx.token, fx.secret),
            expect_claims(fx.claims),
            (("a forged signature", functools.partial(minimal_verify, forged, fx.secret)),),
        ),
        Case(
            "floor.hmac_sha256",
            "floor",
            "verify",
            one_hmac,
            is_signature,
        ),
        Case(
            "floor.ed25519_verify",
            "floor",
            "verify",
            functools.partial(fx.ed25519_public.verify, ed_raw, ed_input),
            returns_none,
            (
                (
                    "a forged signature",
                    functools.partial(fx.ed25519_public.verify, forged_ed, ed_input),
                ),
            ),
        ),
    ]


def _peer_cases(
    fx: Fixture, label: str, decode: Callable[[str], object], encode: Callable[[], object]
) -> list[Case]:
    return [
        Case(
            f"{label}.decode.HS256",
            "peer",
            "verify",
            functools.partial(decode, fx.token),
            expect_claims(fx.claims),
            _rejects(decode, fx.bad_tokens),
        ),
        Case(f"{label}.encode.HS256", "peer", "sign", encode, _expect_token(fx)),
    ]


def _peer_header(fx: Fixture) -> dict[str, Any]:
    return {"alg": "HS256", "kid": fx.hs_key.kid, "typ": TYP}


def _pyjwt_shaped(fx: Fixture, label: str, jwt: Any) -> list[Case]:
    """PyJWT and python-jose share one API: ``decode(token, key, ...)`` / ``encode(...)``."""
    decode = functools.partial(
        jwt.decode, key=fx.secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER
    )
    encode = functools.partial(
        jwt.encode,
        copy.deepcopy(fx.claims),
        fx.secret,
        algorithm="HS256",
        headers={"kid": fx.hs_key.kid, "typ": TYP},
    )
    return _peer_cases(fx, label, decode, encode)


def _pyjwt(fx: Fixture) -> list[Case]:
    return _pyjwt_shaped(fx, "pyjwt", importlib.import_module("jwt"))


def _joserfc(fx: Fixture) -> list[Case]:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    key = OctKey.import_key(fx.secret)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    )

    def decode(token: str) -> dict[str, Any]:
        claims = jwt.decode(token, key, algorithms=["HS256"]).claims
        registry.validate(claims)
        return claims

    encode = functools.partial(jwt.encode, _peer_header(fx), copy.deepcopy(fx.claims), key)
    return _peer_cases(fx, "joserfc", decode, encode)


def _authlib(fx: Fixture) -> list[Case]:
    # authlib.jose warns on import that it is deprecated in favour of joserfc, and
    # authlib.deprecate puts an "always" filter first when it loads: load it, then ignore.
    importlib.import_module("authlib.deprecate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        jose = importlib.import_module("authlib.jose")
    jwt = jose.JsonWebToken(["HS256"])
    options = {
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": AUDIENCE},
        "exp": {"essential": True},
    }

    def decode(token: str) -> object:
        claims = jwt.decode(token, fx.secret, claims_options=options)
        claims.validate()
        return claims

    encode = functools.partial(jwt.encode, _peer_header(fx), copy.deepcopy(fx.claims), fx.secret)
    return _peer_cases(fx, "authlib", decode, encode)


def _python_jose(fx: Fixture) -> list[Case]:
    return _pyjwt_shaped(fx, "python_jose", importlib.import_module("jose.jwt"))


# label, distribution, builder
PEERS: Final[tuple[tuple[str, str, Callable[[Fixture], list[Case]]], ...]] = (
    ("pyjwt", "PyJWT", _pyjwt),
    ("joserfc", "joserfc", _joserfc),
    ("authlib", "Authlib", _authlib),
    ("python_jose", "python-jose", _python_jose),
)


def build_cases(fx: Fixture, stored: Sequence[Case] = ()) -> tuple[list[Case], list[str]]:
    """Every case, in display order, and notes on the peers that could not be loaded.

    ``stored``: the cases that fetch the user key from a cache or a store
    (:mod:`sjti.bench._backends`), shown right after ``sjti.verify_full.HS256``.
    """
    notes: list[str] = []
    peers: list[Case] = []
    for label, dist, builder in PEERS:
        try:
            peers.extend(builder(fx))
        except ImportError:
            notes.append(f"{label} skipped: {dist} is not installed")
    issue, boundary, full = _sjti_cases(fx)
    minimal, mac, ed25519_floor = _floor_cases(fx)
    eddsa, *other_asymmetric = _asymmetric_cases(fx)
    cases = [
        *(boundary, full, *stored),
        *(c for c in peers if c.kind == "verify"),
        *(minimal, mac, issue),
        *(c for c in peers if c.kind == "sign"),
        *(eddsa, ed25519_floor, *other_asymmetric),
    ]
    return cases, notes
