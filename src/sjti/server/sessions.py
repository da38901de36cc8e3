"""Refresh tokens: opaque split tokens in families (one family = one device session).

A refresh token is the ``session`` strategy's split token (:mod:`sjti._core.strategies.
session`): ``id.secret.mac``. The MAC (server key) drops forged tokens before any query;
the table keeps only ``SHA-256(secret)``. Every use **rotates**: the token is marked used
(atomically, ``UPDATE ... WHERE used = false``) and a new one joins the family. Presenting
a used token again is **reuse**: the whole family is revoked and the caller is told so
(:class:`ReuseDetected`), so it can also cut the user's access tokens and audit it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, and_, select, update

from .._core.codec import b64url_encode
from .._core.strategies import session as split
from ..errors import SjtiError
from ..stores._revocation import utc_now
from .db import families, refresh_tokens, users

__all__ = [
    "Family",
    "InvalidRefreshToken",
    "RefreshStore",
    "ReuseDetected",
    "Rotated",
]


class InvalidRefreshToken(Exception):
    """Unknown, forged, expired or revoked refresh token (one answer for all)."""


class ReuseDetected(InvalidRefreshToken):
    """An already-rotated token came back: its family is now revoked."""

    def __init__(self, user_id: str, family_id: str) -> None:
        super().__init__("refresh token reuse")
        self.user_id = user_id
        self.family_id = family_id


@dataclass(frozen=True, slots=True)
class Family:
    """One device session, as listed by ``GET /sessions``."""

    id: str
    user_id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class Rotated:
    """The result of a successful refresh: the new token and where it belongs."""

    token: str
    user_id: str
    family_id: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RefreshStore:
    """Issue, rotate, list and revoke refresh-token families."""

    def __init__(self, engine: Engine, key: split.SessionKey, ttl: int) -> None:
        self._engine = engine
        self._key = key
        self._ttl = ttl

    def _mint(self, user_id: str, family_id: str, now: datetime) -> tuple[str, dict[str, object]]:
        token, record = split.mint(
            self._key, user=user_id, now_ms=_now_ms(), ttl_ms=self._ttl * 1000
        )
        row = {
            "id": record.key,
            "family_id": family_id,
            "verifier_hash": record.verifier_hash.hex(),
            "used": False,
            "created_at": now,
            "expires_at": now + timedelta(seconds=self._ttl),
        }
        return token, row

    def start(self, user_id: str, *, user_agent: str | None, ip: str | None) -> Rotated:
        """A new family (device session) and its first refresh token."""
        now = utc_now()
        family_id = secrets.token_urlsafe(12)
        token, row = self._mint(user_id, family_id, now)
        with self._engine.begin() as conn:
            conn.execute(
                families.insert().values(
                    id=family_id,
                    user_id=user_id,
                    created_at=now,
                    last_used_at=now,
                    user_agent=(user_agent or "")[:256] or None,
                    ip=(ip or "")[:64] or None,
                    revoked=False,
                )
            )
            conn.execute(refresh_tokens.insert().values(**row))
        return Rotated(token, user_id, family_id)

    def rotate(self, token: str) -> Rotated:
        """Use ``token`` once: a new token of the same family, or an error."""
        try:
            parsed = split.check_mac(token, self._key)
        except SjtiError:
            raise InvalidRefreshToken() from None
        token_id = b64url_encode(parsed.id).decode("ascii")
        now = utc_now()
        with self._engine.begin() as conn:
            row = conn.execute(
                select(refresh_tokens, families.c.user_id, families.c.revoked.label("gone"))
                .join(families, families.c.id == refresh_tokens.c.family_id)
                .where(refresh_tokens.c.id == token_id)
            ).one_or_none()
            if row is None or not hmac.compare_digest(
                split.verifier_hash(parsed.secret).hex(), row.verifier_hash
            ):
                raise InvalidRefreshToken()
            if row.gone or row.expires_at <= now:
                raise InvalidRefreshToken()
            claimed = conn.execute(
                update(refresh_tokens)
                .where(and_(refresh_tokens.c.id == token_id, refresh_tokens.c.used.is_(False)))
                .values(used=True)
            )
            if claimed.rowcount != 1:
                self._revoke_in(conn, [row.family_id], now)
                reuse = ReuseDetected(row.user_id, row.family_id)
            else:
                new_token, new_row = self._mint(row.user_id, row.family_id, now)
                conn.execute(refresh_tokens.insert().values(**new_row))
                conn.execute(
                    update(families).where(families.c.id == row.family_id).values(last_used_at=now)
                )
                return Rotated(new_token, row.user_id, row.family_id)
        raise reuse  # after the commit: the family stays revoked

    def lookup(self, token: str) -> tuple[str, str] | None:
        """(user id, family id) of a live refresh token, without using it."""
        try:
            parsed = split.check_mac(token, self._key)
        except SjtiError:
            return None
        token_id = b64url_encode(parsed.id).decode("ascii")
        with self._engine.connect() as conn:
            row = conn.execute(
                select(refresh_tokens, families.c.user_id, families.c.revoked.label("gone"))
                .join(families, families.c.id == refresh_tokens.c.family_id)
                .where(refresh_tokens.c.id == token_id)
            ).one_or_none()
        if row is None or row.gone or row.used or row.expires_at <= utc_now():
            return None
        if not hmac.compare_digest(split.verifier_hash(parsed.secret).hex(), row.verifier_hash):
            return None
        return row.user_id, row.family_id

    def list_for(self, user_id: str) -> list[Family]:
        """The user's live device sessions, most recently used first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(families)
                .where(families.c.user_id == user_id, families.c.revoked.is_(False))
                .order_by(families.c.last_used_at.desc())
            ).all()
        return [
            Family(r.id, r.user_id, r.created_at, r.last_used_at, r.user_agent, r.ip, r.revoked)
            for r in rows
        ]

    def is_revoked(self, family_id: str) -> bool:
        """True if the family is revoked or unknown (fail closed)."""
        with self._engine.connect() as conn:
            revoked = conn.execute(
                select(families.c.revoked).where(families.c.id == family_id)
            ).scalar_one_or_none()
        return revoked is None or bool(revoked)

    def revoke_family(self, user_id: str, family_id: str) -> bool:
        """Revoke one of ``user_id``'s families; False if it is not theirs or already gone."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(families)
                .where(
                    families.c.id == family_id,
                    families.c.user_id == user_id,
                    families.c.revoked.is_(False),
                )
                .values(revoked=True, revoked_at=utc_now())
            )
            return done.rowcount == 1

    def revoke_users(self, user_ids: list[str]) -> int:
        """Revoke every family of these users; how many were revoked."""
        total = 0
        now = utc_now()
        with self._engine.begin() as conn:
            for start in range(0, len(user_ids), 500):
                chunk = user_ids[start : start + 500]
                done = conn.execute(
                    update(families)
                    .where(families.c.user_id.in_(chunk), families.c.revoked.is_(False))
                    .values(revoked=True, revoked_at=now)
                )
                total += done.rowcount
        return total

    def revoke_where(self, user_filters: list[ColumnElement[bool]]) -> int:
        """Revoke every live family of the users matching ``user_filters`` (all ANDed)."""
        selected = select(users.c.id).where(*user_filters)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(families)
                .where(families.c.user_id.in_(selected), families.c.revoked.is_(False))
                .values(revoked=True, revoked_at=utc_now())
            )
            return done.rowcount

    @staticmethod
    def _revoke_in(conn: Connection, family_ids: list[str], now: datetime) -> None:
        conn.execute(
            update(families)
            .where(families.c.id.in_(family_ids))
            .values(revoked=True, revoked_at=now)
        )
