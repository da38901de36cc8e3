"""The end-to-end walk-through behind ``sjti demo``: pure, returns rows to print.

Everything happens in memory with a fixed clock so the output is the same on every run
(apart from random keys): issue, verify both layers, revoke, and the attacks the scheme
is meant to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._core.binding import UserKey
from ._core.claims import ClaimsPolicy
from ._core.codec import dumps
from ._core.jws import encode_header, sign_compact
from ._core.keys import SigningKey
from ._core.wrapping import Kek, KekRing, WrappedSecret, generate_user_key
from .errors import TokenError, UnwrapError
from .testing import FrozenClock
from .tokens import BoundaryVerifier, Issuer, UserVerifier

__all__ = ["DemoStep", "run_demo"]

_ISSUER = "https://auth.example.com"
_AUDIENCE = "https://api.example.com"
_NOW = 1_800_000_000


@dataclass(frozen=True, slots=True)
class DemoStep:
    step: str
    layer: str
    outcome: str  # "accepted", or the error code of the refusal
    expected: str

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.expected


def _outcome(check: object) -> str:
    try:
        if callable(check):
            check()
    except TokenError as exc:
        return exc.code
    except UnwrapError:
        return "unwrap_failed"
    return "accepted"


def run_demo() -> list[DemoStep]:
    """Run the walk-through and return one row per step."""
    clock = FrozenClock(_NOW)
    app_key = SigningKey.generate("EdDSA")
    kek_ring = KekRing([Kek.generate("kek-1")])
    # The "users" table: only wrapped secrets are stored, never the secret itself.
    table: dict[str, WrappedSecret] = {"alice": kek_ring.wrap("alice", generate_user_key())}

    def user_key(user_id: str) -> UserKey:
        return UserKey(kek_ring.unwrap(user_id, table[user_id]))

    issuer = Issuer(app_key, issuer=_ISSUER, audience=_AUDIENCE, clock=clock)
    policy = ClaimsPolicy(issuer=_ISSUER, audience=_AUDIENCE)
    boundary = BoundaryVerifier(app_key.verifying_key, policy, clock=clock)
    verifier = UserVerifier(boundary)

    token = issuer.issue("alice", user_key("alice"), claims={"scope": "read"})
    steps = [
        DemoStep("alice logs in, gets a token", "-", "issued", "issued"),
        DemoStep(
            "gateway checks it", "boundary", _outcome(lambda: boundary.verify(token)), "accepted"
        ),
        DemoStep(
            "service checks it",
            "user",
            _outcome(lambda: verifier.verify_with(token, user_key)),
            "accepted",
        ),
    ]

    # An attacker who stole the app signing key adds a role to alice's token.
    claims = boundary.verify(token)
    forged_claims = {**claims, "roles": ["admin"], "exp": claims["exp"] + 86_400}
    header = encode_header(app_key, {"typ": "at+jwt"})
    forged = sign_compact(header, dumps(forged_claims), app_key).decode("ascii")
    steps += [
        DemoStep(
            "stolen app key: forged admin token",
            "boundary",
            _outcome(lambda: boundary.verify(forged)),
            "accepted",
        ),
        DemoStep(
            "stolen app key: forged admin token",
            "user",
            _outcome(lambda: verifier.verify_with(forged, user_key)),
            "revoked",
        ),
    ]

    # A database dump: the wrapped secret is useless without the KEK kept elsewhere.
    dump = table["alice"].to_str()
    stolen_ring = KekRing([Kek.generate("kek-1")])
    steps.append(
        DemoStep(
            "DB dump only: open alice's secret",
            "storage",
            _outcome(lambda: stolen_ring.unwrap("alice", WrappedSecret.from_str(dump))),
            "unwrap_failed",
        )
    )

    # Revocation: one new secret for alice. Nothing is listed, nothing waits to expire.
    table["alice"] = kek_ring.wrap("alice", generate_user_key())
    steps += [
        DemoStep("admin revokes alice (new secret)", "-", "rotated", "rotated"),
        DemoStep(
            "same token after revoke",
            "boundary",
            _outcome(lambda: boundary.verify(token)),
            "accepted",
        ),
        DemoStep(
            "same token after revoke",
            "user",
            _outcome(lambda: verifier.verify_with(token, user_key)),
            "revoked",
        ),
    ]
    fresh = issuer.issue("alice", user_key("alice"))
    steps.append(
        DemoStep(
            "alice logs in again",
            "user",
            _outcome(lambda: verifier.verify_with(fresh, user_key)),
            "accepted",
        )
    )
    clock.advance(901)
    steps.append(
        DemoStep(
            "15 minutes later", "boundary", _outcome(lambda: boundary.verify(fresh)), "expired"
        )
    )
    return steps
