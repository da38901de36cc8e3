"""Issue and verify JWTs through a strategy, the way an adapter will: no database.

``sign`` is also exactly what an attacker holding the application signing key can do.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from sjti import BoundaryVerifier, ClaimsPolicy, SigningKey, UserKey
from sjti._core.claims import Claims
from sjti._core.codec import b64url_encode, dumps
from sjti._core.jws import encode_header, sign_compact
from sjti._core.strategies import Strategy, merge_stamp

ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
SECOND = 1_800_000_000  # a whole second, as in tests/conftest.py
NOW_MS = SECOND * 1000 + 250
TTL = 900


@cache
def app_key() -> SigningKey:
    """The application signing key (ES256: asymmetric, and malleable, on purpose)."""
    return SigningKey.generate("ES256")


def boundary() -> BoundaryVerifier:
    return BoundaryVerifier(app_key(), ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE))


def base_claims(sub: str, now_ms: int, **extra: Any) -> Claims:
    iat = now_ms // 1000
    return {
        "iss": ISSUER,
        "sub": sub,
        "aud": AUDIENCE,
        "exp": iat + TTL,
        "iat": iat,
        "jti": b64url_encode(os.urandom(16)).decode("ascii"),
        **extra,
    }


def sign(claims: Claims, key: SigningKey | None = None) -> str:
    """A compact JWT over ``claims``: all the application key is needed for."""
    key = key or app_key()
    return sign_compact(encode_header(key, {"typ": "at+jwt"}), dumps(claims), key).decode()


def issue(strategy: Strategy[Any], state: Any, sub: str, *, now_ms: int, **extra: Any) -> str:
    """Issue as an issuer using ``strategy`` would: base claims, the stamp, a signature."""
    claims = base_claims(sub, now_ms, **extra)
    return sign(merge_stamp(claims, strategy.stamp(claims, state, now_ms=now_ms)))


def verify(strategy: Strategy[Any], token: str, state: Any, *, now_ms: int) -> Claims:
    """Both layers: the boundary (app key, claims), then the strategy's decision."""
    claims = boundary().verify(token, now=now_ms // 1000)
    assert strategy.state_key(claims)  # the port would fetch ``state`` by this key
    strategy.check(claims, state, now_ms=now_ms)
    return claims


def fresh_state(name: str) -> Any:
    """A user's state before any revocation."""
    return {"sjti": UserKey.generate(), "epoch": None, "denylist": False, "plain": None}[name]


def attacker_guess(name: str) -> Any:
    """The state as seen by an attacker with the app key and no database access."""
    return fresh_state(name)  # for sjti: a random key, which is not the user's
