"""The users table: create, look up, note logins. Sync SQLAlchemy Core on the engine."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, select
from sqlalchemy.exc import IntegrityError

from ..stores._revocation import utc_now
from .db import users

__all__ = [
    "Credentials",
    "DuplicateUserError",
    "User",
    "create_user",
    "get_by_id",
    "get_by_name",
    "get_with_key",
    "user_from_row",
]


class DuplicateUserError(Exception):
    """The username is taken."""


@dataclass(frozen=True, slots=True)
class User:
    """A user row without its secrets (no password hash, no token secret)."""

    id: str
    username: str
    role: str
    tenant: str | None
    created_at: datetime
    last_login_at: datetime | None

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
    return Credentials(User(*row[:6]), row.password_hash, int(row.token_version or 0))


def get_with_key(engine: Engine, user_id: str) -> RowMapping | None:
    """The user's row with its wrapped key: one query that authorizes and verifies."""
    with engine.connect() as conn:
        return (
            conn.execute(select(*_PUBLIC, users.c.token_secret).where(users.c.id == user_id))
            .mappings()
            .one_or_none()
        )


def get_by_id(engine: Engine, user_id: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(*_PUBLIC).where(users.c.id == user_id)).one_or_none()
    return None if row is None else User(*row)
