"""What every contender shares: the application's secrets, JWT claims and signing.

The comparison plays one application. It holds an HS256 signing key (so PyJWT and joserfc
decode the very same tokens), a KEK ring that wraps the sjti user keys, and a server key
for split-token sessions. Attackers are handed subsets of :class:`AppSecrets`.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final

from .._core.claims import Claims, ClaimsPolicy
from .._core.codec import b64url_encode, dumps
from .._core.jws import encode_header, sign_compact
from .._core.keys import SigningKey
from .._core.strategies import SessionKey
from .._core.wrapping import Kek, KekRing
from ..tokens import BoundaryVerifier

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "TTL_S",
    "AppSecrets",
    "base_claims",
    "boundary_verifier",
    "now_ms",
    "sign",
]

ISSUER: Final = "https://auth.compare.example"
AUDIENCE: Final = "https://api.compare.example"
TTL_S: Final = 900
TYP: Final = "at+jwt"


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AppSecrets:
    """Every secret the application process holds. The repr shows none of them."""

    signing_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    kek: Kek = field(default_factory=Kek.generate)
    session_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def app_key(self) -> SigningKey:
        return SigningKey.from_secret(self.signing_secret)

    @property
    def kek_ring(self) -> KekRing:
        return KekRing([self.kek])

    @property
    def session_key(self) -> SessionKey:
        return SessionKey(self.session_secret)


def boundary_verifier(key: SigningKey) -> BoundaryVerifier:
    """The DB-free layer every JWT contender shares."""
    return BoundaryVerifier(key, ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE))


def base_claims(sub: str, at_ms: int, **extra: Any) -> Claims:
    """The registered claims an issuer sets, with a fresh random ``jti``."""
    iat = at_ms // 1000
    return {
        "iss": ISSUER,
        "sub": sub,
        "aud": AUDIENCE,
        "exp": iat + TTL_S,
        "iat": iat,
        "jti": b64url_encode(os.urandom(16)).decode("ascii"),
        **extra,
    }


def sign(claims: Claims, key: SigningKey) -> str:
    """A compact JWT over ``claims``: all that holding the signing key takes."""
    return sign_compact(encode_header(key, {"typ": TYP}), dumps(claims), key).decode("ascii")
