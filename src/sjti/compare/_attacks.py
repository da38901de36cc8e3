"""Attackers, executed: build every token the stolen material allows, then let the real
verifier judge them. A verdict is "forges" when the verifier accepts one of them.

The attacker knows the code and the public facts (issuer, audience, the victim's id, the
schemas) and holds exactly what :class:`Loot` says. It never touches the live database or
the application's objects: it reads its own read-only copy (the rows of every table, or
every Redis key's value), taken by :func:`sjti.compare._db.read_copy`.
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._core.binding import UserKey, compute_sjti
from .._core.claims import Claims
from .._core.codec import b64url_decode, b64url_encode
from .._core.keys import SigningKey
from .._core.strategies import SessionKey
from .._core.wrapping import Kek, KekRing, WrappedSecret
from ..errors import SjtiError
from ._db import Dump
from ._world import base_claims, now_ms, sign

__all__ = ["Loot", "candidates"]

_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Loot:
    """What the attacker holds, besides public knowledge."""

    victim: str
    db_copy: Dump | None = None
    signing_secret: bytes | None = field(default=None, repr=False)
    session_secret: bytes | None = field(default=None, repr=False)
    kek: Kek | None = None
    stolen: str | None = field(default=None, repr=False)  # one captured token of the victim


def candidates(strategy: str, loot: Loot) -> list[str]:
    """Every token the attacker can build against ``strategy``."""
    return _session_tokens(loot) if strategy == "session" else _jwt_tokens(loot)


def _rows(
    db_copy: Dump | None, table: str, columns: tuple[str, ...], victim: str
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE user_id = victim`` on the attacker's copy; a table
    that is not there (this design keeps none) yields nothing."""
    if db_copy is None:
        return []
    return [
        tuple(row[name] for name in columns)
        for row in db_copy.get(table, [])
        if row.get("user_id") == victim
    ]


# --- JWTs ---------------------------------------------------------------------------------


def _user_keys(loot: Loot) -> list[UserKey]:
    """Candidate sjti user keys: from the copy (opened with the KEK if held) and a guess."""
    found = [UserKey.generate()]
    ring = KekRing([loot.kek]) if loot.kek is not None else None
    for (text,) in _rows(loot.db_copy, "sjti_user_secrets", ("wrapped_secret",), loot.victim):
        if ring is not None:
            with suppress(SjtiError):
                found.append(UserKey(ring.unwrap(loot.victim, WrappedSecret.from_str(text))))
        for part in str(text).split("."):  # a store that kept the key in clear
            try:
                raw = b64url_decode(part.encode("ascii"))
            except (ValueError, SjtiError):
                continue
            if len(raw) == 32:
                found.append(UserKey(raw))
    return found


def _edited(stolen: str) -> Claims:
    """The captured token's claims (read, not verified), stretched and promoted."""
    claims: Claims = orjson.loads(b64url_decode(stolen.split(".")[1].encode("ascii")))
    claims["exp"] = int(claims["exp"]) + _DAY_S
    claims["roles"] = ["admin"]
    return claims


def _unsigned(claims: Claims) -> str:
    header = b64url_encode(orjson.dumps({"alg": "none", "typ": "at+jwt"})).decode()
    return f"{header}.{b64url_encode(orjson.dumps(claims)).decode()}."


def _jwt_tokens(loot: Loot) -> list[str]:
    """Minted and edited JWTs for the victim, under every key the attacker can muster."""
    held = loot.signing_secret
    key = SigningKey.from_secret(held if held is not None else secrets.token_bytes(32))
    at = now_ms()
    templates = [base_claims(loot.victim, at, iat_ms=at, roles=["admin"])]
    if loot.stolen is not None:
        templates.append(_edited(loot.stolen))
    tokens = [_unsigned(templates[0])]
    for user_key in [None, *_user_keys(loot)]:
        for template in templates:
            claims = {k: v for k, v in template.items() if k != "sjti"}
            if user_key is not None:
                claims["sjti"] = compute_sjti(claims, user_key)
            tokens.append(sign(claims, key))
    return tokens


# --- split-token sessions -----------------------------------------------------------------


def _session_tokens(loot: Loot) -> list[str]:
    """Tokens for the victim's sessions found in the copy, and for a made-up session."""
    server = (
        SessionKey(loot.session_secret)
        if loot.session_secret is not None
        else SessionKey.generate()  # a guess
    )
    found = _rows(loot.db_copy, "cmp_session", ("id", "verifier"), loot.victim)
    pairs = [(bytes(i), bytes(v)) for i, v in found]
    pairs.append((secrets.token_bytes(16), secrets.token_bytes(32)))
    tokens = []
    for session_id, secret in pairs:
        mac = server._mac(session_id, secret)  # the documented format, with the key held
        tokens.append(".".join(b64url_encode(p).decode() for p in (session_id, secret, mac)))
    return tokens
