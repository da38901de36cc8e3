"""Project Wycheproof JOSE vectors: every JWS, JWK and JWE case against the compact verifier.

The vectors live outside the repository, in ``<repo>/../shared/vectors/wycheproof`` (see its
SOURCE.md for provenance and the errata applied below).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sjti import KeySet, SigningKey, VerifyingKey
from sjti._core.jws import CompactVerifier
from sjti.errors import (
    AlgorithmNotAllowedError,
    InvalidKeyError,
    MalformedTokenError,
    TokenError,
)

WYCHEPROOF_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"
SIGNATURE_FILE = "json_web_signature_test.json"
KEY_FILE = "json_web_key_test.json"
CRYPTO_FILE = "json_web_crypto_test.json"
FILES = {SIGNATURE_FILE: "jws", KEY_FILE: "jwk", CRYPTO_FILE: "crypto"}
ASYMMETRIC_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})

# Errata from SOURCE.md, all in the signature file, keyed by tcId.
SKIPPED = {
    367: "erratum (tcId 367): identical to valid tcId 357, the invalid padding it names is absent",
    370: "erratum (tcId 370): identical to valid tcId 357, the invalid padding it names is absent",
}
# Labelled valid, refused on purpose: the error we expect, and why.
REFUSED_DESPITE_VALID: dict[int, tuple[type[TokenError], str]] = {
    372: (MalformedTokenError, "erratum: '?' inserted into the header segment"),
    373: (MalformedTokenError, "erratum: '?' inserted into the payload segment"),
    # Our own finding, not in SOURCE.md: the group's key says "alg": "PS256" but RFC 7520
    # Figure 20 is a PS384 signature. The key pins the algorithm, so sjti refuses it;
    # the same key imported as PS384 verifies (tests/core/test_vectors.py covers 4.2).
    346: (AlgorithmNotAllowedError, "key labelled PS256, token PS384 (RFC 7520 Figure 20)"),
    350: (AlgorithmNotAllowedError, "key labelled PS256, token PS384 (RFC 7520 Figure 20)"),
}


@dataclass(frozen=True)
class Case:
    file: str
    group: str
    kind: str  # "jws" or "jwe"
    tc_id: int
    comment: str
    result: str
    token: str
    key_material: Mapping[str, Any]
    group_has_valid: bool

    @property
    def id(self) -> str:
        prefix = FILES[self.file]
        name = f"{self.kind}-{self.tc_id}-{self.comment}"
        return name if prefix == "jws" else f"{prefix}-{name}"

    @property
    def errata(self) -> bool:
        return self.file == SIGNATURE_FILE

    @property
    def expect_valid(self) -> bool:
        if self.errata and self.tc_id in REFUSED_DESPITE_VALID:
            return False
        return self.kind == "jws" and self.result == "valid"

    @property
    def json_serialized(self) -> bool:
        return self.token.lstrip().startswith("{")


def _load(name: str) -> dict[str, Any]:
    return json.loads((WYCHEPROOF_DIR / name).read_text(encoding="utf-8"))


def _cases(name: str) -> list[Case]:
    cases = []
    for group in _load(name)["testGroups"]:
        material = group.get("public", group.get("private"))
        has_valid = any(t["result"] == "valid" and "jws" in t for t in group["tests"])
        for test in group["tests"]:
            kind = "jws" if "jws" in test else "jwe"
            token = test[kind]
            cases.append(
                Case(
                    file=name,
                    group=group["comment"],
                    kind=kind,
                    tc_id=test["tcId"],
                    comment=test["comment"],
                    result=test["result"],
                    # the crypto file gives JSON serialisations as objects, not strings
                    token=token if isinstance(token, str) else json.dumps(token),
                    key_material=material,
                    group_has_valid=has_valid,
                )
            )
    return cases


DECLARED_TOTAL = sum(_load(name)["numberOfTests"] for name in FILES)
CASES = [case for name in FILES for case in _cases(name)]
VALID_JWS = [case for case in CASES if case.expect_valid]


def build_keyset(material: Mapping[str, Any]) -> KeySet:
    """One-key set from a single JWK, or a set from a JWKS; private halves give their public."""
    if "keys" in material:
        return KeySet.from_jwks(material)
    if material.get("kty") != "oct" and not ASYMMETRIC_PRIVATE_MEMBERS.isdisjoint(material):
        return KeySet(verify_only=[SigningKey.from_jwk(material).verifying_key])
    return KeySet(verify_only=[VerifyingKey.from_jwk(material)])


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def check_valid(case: Case) -> None:
    header, payload = CompactVerifier(build_keyset(case.key_material)).verify(case.token)
    header_segment, payload_segment, _ = case.token.split(".")
    assert json.loads(b64url_decode(header_segment)) == header
    assert b64url_decode(payload_segment) == payload


def refusal(case: Case) -> Exception:
    """Load the key set and verify; return the exception, which must be one of two families."""
    try:
        keyset = build_keyset(case.key_material)
    except InvalidKeyError as exc:
        return exc
    try:
        CompactVerifier(keyset).verify(case.token)
    except TokenError as exc:
        return exc
    pytest.fail(f"{case.id} ({case.result}) was accepted")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_wycheproof_case(case: Case) -> None:
    """Each published attack or edge case must end as labelled: accepted, or refused cleanly."""
    if case.errata and case.tc_id in SKIPPED:
        pytest.skip(SKIPPED[case.tc_id])
    if case.expect_valid:
        check_valid(case)
        return
    if case.errata and case.tc_id in REFUSED_DESPITE_VALID:
        with pytest.raises(REFUSED_DESPITE_VALID[case.tc_id][0]):
            CompactVerifier(build_keyset(case.key_material)).verify(case.token)
        return
    exc = refusal(case)
    assert isinstance(exc, InvalidKeyError | TokenError)
    if case.group_has_valid:
        # the same key verified the group's valid case, so the token is what is refused
        assert isinstance(exc, TokenError), f"key refused although it verifies: {exc!r}"
    if case.json_serialized and isinstance(exc, TokenError):
        assert isinstance(exc, MalformedTokenError)


JWE_CASES = [case for case in CASES if case.kind == "jwe"]
STAND_IN_KEY = SigningKey.from_secret(bytes(range(32)), alg="HS256", kid="kid-aes-encrypt")


@pytest.mark.parametrize("case", JWE_CASES, ids=lambda case: case.id)
def test_jwe_token_is_malformed_for_a_jws_verifier(case: Case) -> None:
    """A JWE must never be read as a JWS, whatever key the verifier holds (no alg confusion)."""
    with pytest.raises(MalformedTokenError):
        CompactVerifier(KeySet(STAND_IN_KEY)).verify(case.token)


def test_every_declared_case_is_collected() -> None:
    """A loader that drops a group or a file would silently shrink the battery."""
    assert len(CASES) == DECLARED_TOTAL
    assert len(CASES) == len({(case.file, case.tc_id) for case in CASES})
    assert {case.file for case in CASES} == set(FILES)


def _valid_jws_count_in_files() -> int:
    """Counted from the raw JSON, apart from the harness: labelled-valid JWS minus errata."""
    count = 0
    for name in FILES:
        for group in _load(name)["testGroups"]:
            for test in group["tests"]:
                relabelled = name == SIGNATURE_FILE and test["tcId"] in REFUSED_DESPITE_VALID
                if "jws" in test and test["result"] == "valid" and not relabelled:
                    count += 1
    return count


def test_summary_all_valid_jws_cases_verify() -> None:
    """A harness bug that skips or short-circuits every case must fail here, not pass quietly."""
    expected = _valid_jws_count_in_files()
    verified, failed = [], []
    for case in VALID_JWS:
        try:
            check_valid(case)
        except (TokenError, InvalidKeyError) as exc:
            failed.append(f"{case.id}: {exc!r}")
        else:
            verified.append(case.id)

    assert expected > 0
    assert failed == []
    assert len(verified) >= expected
