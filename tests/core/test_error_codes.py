"""Distinct codes for the malformed tokens a server wants to tell apart (a 413 for a token
too large, say), each still a MalformedTokenError for callers that catch the family."""

from __future__ import annotations

import pytest

from sjti import (
    BadAlgHeaderError,
    BadKidHeaderError,
    BoundaryVerifier,
    ClaimsPolicy,
    MalformedTokenError,
    SigningKey,
    TokenTooLargeError,
    UnsupportedHeaderError,
)
from sjti._core.codec import b64url_encode, dumps

KEY = SigningKey.from_secret(b"k" * 32, kid="app")
VERIFIER = BoundaryVerifier(KEY.verifying_key, ClaimsPolicy(issuer="i", audience="a"))


def token_with(header: dict[str, object]) -> str:
    return ".".join((b64url_encode(dumps(header)).decode(), b64url_encode(b"{}").decode(), "c2ln"))


@pytest.mark.parametrize(
    ("token", "error", "code"),
    [
        ("a" * 9000, TokenTooLargeError, "too_large"),
        (
            token_with({"alg": "HS256", "kid": "app", "crit": ["exp"]}),
            UnsupportedHeaderError,
            "unsupported_header",
        ),
        (
            token_with({"alg": "HS256", "kid": "app", "zip": "DEF"}),
            UnsupportedHeaderError,
            "unsupported_header",
        ),
        (token_with({"kid": "app"}), BadAlgHeaderError, "bad_alg"),
        (token_with({"alg": 256, "kid": "app"}), BadAlgHeaderError, "bad_alg"),
        (token_with({"alg": "HS256", "kid": 7}), BadKidHeaderError, "bad_kid"),
    ],
    ids=["too-large", "crit", "zip", "no-alg", "alg-number", "kid-number"],
)
def test_each_cause_has_its_code(token: str, error: type[Exception], code: str) -> None:
    with pytest.raises(error) as raised:
        VERIFIER.verify(token)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert isinstance(raised.value, MalformedTokenError)
