"""The users table: create, look up, note logins. Sync SQLAlchemy Core on the engine, and
for the read every authenticated request makes, :class:`UserRows`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from .._core.wrapping import KekRing
from ..stores import _lookup as lookups
from ..stores import _statements as st
from ..stores._revocation import utc_now
from .db import LAYOUT, users

__all__ = [
    "ROLES",
    "Credentials",
    "DuplicateUserError",
    "User",
    "UserRows",
    "create_user",
    "find_user",
    "get_by_id",
    "get_by_name",
    "list_users",
    "normalise_username",
    "set_role",
    "user_from_row",
]


ROLES: Final = ("user", "admin")


class DuplicateUserError(Exception):
    """The username is taken."""


def normalise_username(name: str) -> str:
    """How every username is stored and looked up: trimmed, lower-case."""
    return name.strip().lower()


@dataclass(frozen=True, slots=True)
class User:
    """A user row without its secrets (no password hash, no token secret)."""

    id: str
    username: str
    role: str
    tenant: str | None
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None = None

    @property
    def roles(self) -> list[str]:
        return [self.role]


_PUBLIC = (
    users.c.id,
    users.c.username,
    users.c.role,
    users.c.tenant,
    users.c.created_at,
    users.c.last_login_at,
    users.c.disabled_at,
)


def create_user(
    engine: Engine, username: str, password_hash: str, *, role: str, tenant: str | None
) -> User:
    """Insert a user; :class:`DuplicateUserError` if the name is taken."""
    user = User(uuid.uuid4().hex, username, role, tenant, utc_now(), None)
    try:
        with engine.begin() as conn:
            conn.execute(
                users.insert().values(
                    id=user.id,
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    tenant=tenant,
                    created_at=user.created_at,
                )
            )
    except IntegrityError:
        raise DuplicateUserError() from None
    return user


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a password grant checks, read when the request starts: the user, the password
    hash, and the user key's version (the mint refuses if it moved meanwhile)."""

    user: User
    password_hash: str
    key_version: int  # 0: no key yet


def user_from_row(row: Mapping[Any, Any]) -> User:
    """The public part of a users row (a row the caller already holds)."""
    return User(*(row[c.name] for c in _PUBLIC))


def get_by_name(engine: Engine, username: str) -> Credentials | None:
    """The user, its password hash and key version, for a login."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                *_PUBLIC,
                users.c.password_hash,
                users.c.token_version,
            ).where(users.c.username == username)
        ).one_or_none()
    if row is None:
        return None
    return Credentials(User(*row[:7]), row.password_hash, int(row.token_version or 0))


_WITH_KEY: Final = (*_PUBLIC, users.c.token_secret, users.c.token_devices)
_WITH_KEY_NAMES: Final = tuple(c.name for c in _WITH_KEY)


class UserRows:
    """The user's row with its wrapped key and devices, by id: the one query that
    authorizes and verifies every bearer request.

    The store's hot-statement machinery (:mod:`sjti.stores._lookup`) runs it: compiled
    once for the engine's dialect and executed on a few held DBAPI connections (in
    autocommit on PostgreSQL: no ``ROLLBACK`` round trip), ~5 µs on SQLite and one round
    trip on PostgreSQL instead of ~200/450 µs through ``Connection.execute`` (a statement
    built, its cache key, a result object, a pool trip per call). Engine cursor listeners
    still see it. A driver failure raises :class:`~sjti.errors.BackendError` (503).
    """

    def __init__(self, engine: Engine, ring: KekRing) -> None:
        ctx = st.build_context(engine.dialect.name, ring, LAYOUT, None, None, utc_now)
        statement = select(*_WITH_KEY).where(
            users.c.id == bindparam(lookups.ID, type_=users.c.id.type)
        )
        lookup = lookups.compile_statement(ctx, engine.dialect, statement, (lookups.ID,))
        self._lane = lookups.Lane(engine, lookup)

    def with_key(self, user_id: str) -> dict[str, Any] | None:
        """The row (column name to value), or ``None`` when there is no such user."""
        row = self._lane.fetch(user_id)
        return None if row is None else dict(zip(_WITH_KEY_NAMES, row, strict=True))

    def close(self) -> None:
        """Give the held connections back to the pool."""
        self._lane.close()


def find_user(engine: Engine, name_or_id: str) -> User | None:
    """A user by username (normalised) or by id: what operators type."""
    with engine.connect() as conn:
        row = conn.execute(
            select(*_PUBLIC).where(
                (users.c.username == normalise_username(name_or_id)) | (users.c.id == name_or_id)
            )
        ).first()
    return None if row is None else User(*row)


def list_users(engine: Engine, *, limit: int = 100, offset: int = 0) -> list[User]:
    """Users, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_PUBLIC).order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
        ).all()
    return [User(*row) for row in rows]


def set_role(engine: Engine, user_id: str, role: str) -> None:
    """Give a user a role (``user`` or ``admin``); only operators do this, never a request."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(role=role))


def get_by_id(engine: Engine, user_id: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(*_PUBLIC).where(users.c.id == user_id)).one_or_none()
    return None if row is None else User(*row)
