"""Refresh tokens: opaque split tokens in families (one family = one device session).

A refresh token is the ``session`` strategy's split token (:mod:`sjti._core.strategies.
session`): ``id.secret.mac``. The MAC (server key) drops forged tokens before any query;
the table keeps only ``SHA-256(secret)``. Every use **rotates**: the token is marked used
(atomically, ``UPDATE ... WHERE used = false``) and a new one joins the family. Presenting
a used token again is **reuse**: nothing is changed here and the caller is told so
(:class:`ReuseDetected`); it revokes the family and the user's key in one transaction.

Minting is serialised against revocation
    Both grants (:meth:`RefreshStore.login`, :meth:`RefreshStore.rotate`) run in ONE
    transaction that locks the user's row first (``SELECT ... FOR UPDATE`` on PostgreSQL;
    SQLite's ``BEGIN IMMEDIATE`` admits one writer), then validates the grant, rotates the
    refresh token and reads the user's key from the locked row. A revocation locks the
    same row, so it either commits first (the grant then finds its family revoked, or its
    key version changed) or waits until the grant committed (the grant's key and family
    are then rotated and revoked by it). Invariant: no token minted by a request that
    started before a revocation committed is accepted after that revocation returned.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, RowMapping, and_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .._core.binding import UserKey, device_id_bytes, new_device_id
from .._core.codec import b64url_encode
from .._core.strategies import session as split
from .._core.wrapping import KekRing
from ..errors import BackendError, ConfigurationError, SjtiError
from ..stores._devices import parse_column
from ..stores._ops import Execute, Fetch, Plan
from ..stores._revocation import utc_now
from ..stores.layouts import user_key_from_row
from .db import LAYOUT, families, refresh_tokens, users
from .users import User, user_from_row

if TYPE_CHECKING:
    from ..stores.sql import SqlSecretStore

__all__ = [
    "AccountChanged",
    "DevicesTracked",
    "Family",
    "InvalidRefreshToken",
    "Minted",
    "NoSecretYet",
    "RefreshStore",
    "ReuseDetected",
    "Rotated",
    "SessionEnded",
    "disable_users_too",
    "end_unlisted_families",
    "revoke_families_of",
    "revoke_family_too",
    "revoke_other_families_too",
    "set_password_too",
]


class InvalidRefreshToken(Exception):
    """Unknown, forged, expired or revoked refresh token (one answer for all)."""


class ReuseDetected(InvalidRefreshToken):
    """An already-rotated token came back: the caller must revoke its family (and key)."""

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


class AccountChanged(Exception):
    """The user's key changed (a revocation) while the password grant ran: retry."""


class DevicesTracked(Exception):
    """The user's devices are tracked (they signed in under ``device`` granularity): a
    password grant must list its family as a device (:meth:`RefreshStore.login_device`),
    or the user's own key refuses the tokens it mints."""


class SessionEnded(Exception):
    """Raised inside a revocation's transaction (which then rolls back, nothing changed):
    the device session the change was asked from is no longer live, or the password it
    checked is no longer the password. A request that started before a revocation must not
    act after it."""


class NoSecretYet(Exception):
    """The user has no token secret yet: ``store.ensure`` it, then mint again."""


@dataclass(frozen=True, slots=True)
class Rotated:
    """The result of a successful refresh: the new token and where it belongs."""

    token: str
    user_id: str
    family_id: str


@dataclass(frozen=True, slots=True)
class Minted:
    """A grant that committed: the refresh token, the user as locked, and the user key read
    in the same transaction (sign the access token with this key, never a later read)."""

    session: Rotated
    user: User
    key: UserKey


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_device_id(value: str) -> bool:
    try:
        device_id_bytes(value)
    except ConfigurationError:
        return False
    return True


def end_unlisted_families(user_ids: Sequence[Any]) -> Plan[None]:
    """End every live refresh family of these users that their device list does not list.

    The invariant it keeps: once a user's devices are tracked, a live family *is* a listed
    device. Every change of the list (a device signed out, the oldest dropped at the limit,
    a key rotation emptying it, the first sign-in of a user whose older sessions are not
    devices) runs this in its transaction, after the list changed, so a device the list
    dropped cannot live on as a refresh family: one that cannot refresh (its sid is not
    listed) yet counts as "still signed in" for the checks that keep a device (``sign out
    others``, the password change) and would be listed again by them. Users whose devices
    are not tracked (``token_devices`` NULL) are left alone."""
    rows = yield Fetch(
        select(users.c.id, users.c.token_devices).where(
            users.c.id.in_(list(user_ids)), users.c.token_devices.is_not(None)
        )
    )
    now = utc_now()
    for row in rows:
        listed = parse_column(row["token_devices"]) or []
        condition = [families.c.user_id == row["id"], families.c.revoked.is_(False)]
        if listed:
            condition.append(families.c.id.not_in(listed))
        yield Execute(update(families).where(*condition).values(revoked=True, revoked_at=now))


def revoke_families_of(counted: list[int]) -> Any:
    """The ``also`` sub-plan for a key revocation: revoke every live family of the selected
    users in the same transaction; appends how many to ``counted``."""

    def plan(user_ids: Sequence[Any]) -> Plan[None]:
        now = utc_now()
        for start in range(0, len(user_ids), 500):
            rows = yield Fetch(
                update(families)
                .where(
                    families.c.user_id.in_(list(user_ids[start : start + 500])),
                    families.c.revoked.is_(False),
                )
                .values(revoked=True, revoked_at=now)
                .returning(families.c.id)
            )
            counted.append(len(rows))

    return plan


def disable_users_too(counted: list[int]) -> Any:
    """The ``also`` sub-plan of ``sjti users disable``: mark the users disabled and revoke
    every live family, with the key rotation, in one transaction."""
    revoke_families = revoke_families_of(counted)

    def plan(user_ids: Sequence[Any]) -> Plan[None]:
        yield from revoke_families(user_ids)
        yield Fetch(
            update(users)
            .where(users.c.id.in_(list(user_ids)))
            .values(disabled_at=utc_now())
            .returning(users.c.id)
        )

    return plan


def revoke_family_too(family_id: str) -> Any:
    """The ``also`` sub-plan that ends one family with the change it rides on: reuse
    detection (with the key rotation, or with the device sign-out), a device sign-out,
    RFC 7009. A tracked user's families the change dropped from the device list end with
    it (a key rotation empties the list: every family; see :func:`end_unlisted_families`)."""

    def plan(user_ids: Sequence[Any]) -> Plan[None]:
        yield Fetch(
            update(families)
            .where(families.c.id == family_id)
            .values(revoked=True, revoked_at=utc_now())
            .returning(families.c.id)
        )
        yield from end_unlisted_families(user_ids)

    return plan


def revoke_other_families_too(keep: str, counted: list[int]) -> Any:
    """The ``also`` sub-plan of "sign out all other devices": every live family of the
    selected users but ``keep`` (the device asking), with the key rotation.

    ``keep`` must still be live and theirs, checked (and its row locked) inside the
    transaction: a device signed out, or revoked with its user, while the request ran
    raises :class:`SessionEnded` and nothing commits (a revoked session never signs the
    others out, nor changes the password)."""

    def plan(user_ids: Sequence[Any]) -> Plan[None]:
        alive = yield Fetch(
            update(families)
            .where(
                families.c.id == keep,
                families.c.user_id.in_(list(user_ids)),
                families.c.revoked.is_(False),
            )
            .values(last_used_at=families.c.last_used_at)
            .returning(families.c.id)
        )
        if not alive:
            raise SessionEnded("this device was signed out meanwhile")
        rows = yield Fetch(
            update(families)
            .where(
                families.c.user_id.in_(list(user_ids)),
                families.c.id != keep,
                families.c.revoked.is_(False),
            )
            .values(revoked=True, revoked_at=utc_now())
            .returning(families.c.id)
        )
        counted.append(len(rows))
        # The rotation emptied a tracked device list: this device stays signed in. Only a
        # device id is listed (a session from before devices has none: it is signed out
        # with the others rather than written into the list every lookup parses).
        yield Execute(
            update(users)
            .where(users.c.id.in_(list(user_ids)), users.c.token_devices.is_not(None))
            .values(token_devices=keep if _is_device_id(keep) else "")
        )

    return plan


def set_password_too(password_hash: str, then: Any, *, replacing: str) -> Any:
    """The ``also`` sub-plan of a password change: the new hash, committed with the key
    rotation and ``then`` (the families it ends), or not at all.

    ``replacing`` is the hash the current password was checked against: compared in the
    transaction, so a password changed by another request meanwhile (the owner, on another
    device) is never overwritten by one checked against the old password
    (:class:`SessionEnded`, everything rolled back)."""

    def plan(user_ids: Sequence[Any]) -> Plan[None]:
        yield from then(user_ids)
        changed = yield Fetch(
            update(users)
            .where(users.c.id.in_(list(user_ids)), users.c.password_hash == replacing)
            .values(password_hash=password_hash)
            .returning(users.c.id)
        )
        if len(changed) != len(user_ids):
            raise SessionEnded("the password changed meanwhile")

    return plan


class RefreshStore:
    """Issue, rotate, list and revoke refresh-token families; mint under the user lock."""

    def __init__(self, engine: Engine, key: split.SessionKey, ttl: int, kek_ring: KekRing) -> None:
        self._engine = engine
        self._key = key
        self._ttl = ttl
        self._ring = kek_ring
        self._sqlite = engine.dialect.name == "sqlite"

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

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); database errors -> 503."""
        try:
            with self._engine.connect() as conn:
                if self._sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
                conn.commit()
        except (DBAPIError, PoolTimeoutError):
            raise BackendError("database unavailable") from None

    def _lock_user(self, conn: Connection, user_id: str) -> RowMapping | None:
        """The user's row, locked until commit: revocations of this user wait for us."""
        query = select(users).where(users.c.id == user_id)
        if not self._sqlite:
            query = query.with_for_update()
        return conn.execute(query).mappings().one_or_none()

    def _key_of(self, row: RowMapping) -> UserKey:
        key = user_key_from_row(row, self._ring, LAYOUT)
        if key is None:
            raise NoSecretYet()
        return key

    def login(
        self, user_id: str, version: int, *, user_agent: str | None, ip: str | None
    ) -> Minted:
        """Password grant: a new family, its first token, the key; refused with
        :class:`AccountChanged` if the key version moved since the password was checked
        (a revocation committed while the request ran). The one move allowed is 0 -> 1:
        the user's first key being created (a revocation needs an existing key).
        :class:`DevicesTracked` (nothing changed) if the user's devices are tracked: their
        key refuses a family it does not list, so the caller uses :meth:`login_device`."""
        now = utc_now()
        family_id = new_device_id()
        token, row = self._mint(user_id, family_id, now)
        with self._write() as conn:
            locked = self._lock_user(conn, user_id)
            if locked is None or locked["disabled_at"] is not None:
                raise AccountChanged()
            key = self._key_of(locked)
            if key.devices is not None:
                raise DevicesTracked()  # rolls back: the caller signs the device in
            current = int(locked[LAYOUT.version_column] or 0)
            if current != version and (version, current) != (0, 1):
                raise AccountChanged()
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
            conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))
            user = user_from_row(locked)
        return Minted(Rotated(token, user_id, family_id), user, key)

    def login_device(
        self,
        store: SqlSecretStore,
        user_id: str,
        version: int,
        *,
        user_agent: str | None,
        ip: str | None,
        max_devices: int,
        wait: float,
    ) -> Minted:
        """Password grant with per-device revocation: the new family's id is the device
        id, listed on the user row by the store's ``sign_in`` in the same transaction as
        the family, its first refresh token and the version check (as :meth:`login`);
        devices past ``max_devices`` are signed out with their families. Returns once
        every live node applied the sign-in (at most ``wait`` s), so none refuses the
        new device's first token with a stale copy of the user's record."""
        now = utc_now()
        family_id = new_device_id()
        token, row = self._mint(user_id, family_id, now)
        seen: list[User] = []

        def with_the_family(id_values: Sequence[Any], _signed_out: Sequence[str]) -> Plan[None]:
            rows = yield Fetch(select(users).where(users.c.id.in_(list(id_values))))
            locked = rows[0] if rows else None
            current = 0 if locked is None else int(locked[LAYOUT.version_column] or 0)
            if locked is None or locked["disabled_at"] is not None:
                raise AccountChanged()
            if current != version and (version, current) != (0, 1):
                raise AccountChanged()
            yield Execute(
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
            yield Execute(refresh_tokens.insert().values(**row))
            yield Execute(update(users).where(users.c.id == user_id).values(last_login_at=now))
            # The devices past the limit end with their families; so do the user's sessions
            # from before devices were tracked (their sid is listed nowhere) at the first
            # device sign-in.
            yield from end_unlisted_families(id_values)
            seen.append(user_from_row(locked))

        signed_in = store.sign_in(
            user_id,
            sid=family_id,
            max_devices=max_devices,
            also=with_the_family,
            wait="all",
            timeout=wait,
        )
        return Minted(Rotated(token, user_id, family_id), seen[0], signed_in.key)

    def rotate(self, token: str) -> Minted:
        """Refresh grant: use ``token`` once; a new token of the same family and the key.

        :class:`ReuseDetected` (nothing changed: the caller revokes) if it was used before;
        :class:`InvalidRefreshToken` for anything else that is wrong.
        """
        try:
            parsed = split.check_mac(token, self._key)
        except SjtiError:
            raise InvalidRefreshToken() from None
        token_id = b64url_encode(parsed.id).decode("ascii")
        now = utc_now()
        with self._write() as conn:
            owner = conn.execute(
                select(families.c.user_id)
                .join(refresh_tokens, families.c.id == refresh_tokens.c.family_id)
                .where(refresh_tokens.c.id == token_id)
            ).scalar_one_or_none()
            if owner is None:
                raise InvalidRefreshToken()
            locked = self._lock_user(conn, owner)
            # Read after the lock: a revocation that committed meanwhile is visible now.
            row = conn.execute(
                select(refresh_tokens, families.c.user_id, families.c.revoked.label("gone"))
                .join(families, families.c.id == refresh_tokens.c.family_id)
                .where(refresh_tokens.c.id == token_id)
            ).one_or_none()
            if (
                locked is None
                or row is None
                or not hmac.compare_digest(
                    split.verifier_hash(parsed.secret).hex(), row.verifier_hash
                )
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
                raise ReuseDetected(row.user_id, row.family_id)  # rolls back: nothing changed
            key = self._key_of(locked)
            if key.devices is not None and row.family_id not in key.devices:
                raise InvalidRefreshToken()  # that device was signed out (or never listed)
            new_token, new_row = self._mint(row.user_id, row.family_id, now)
            conn.execute(refresh_tokens.insert().values(**new_row))
            conn.execute(
                update(families).where(families.c.id == row.family_id).values(last_used_at=now)
            )
            user = user_from_row(locked)
        return Minted(Rotated(new_token, row.user_id, row.family_id), user, key)

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
