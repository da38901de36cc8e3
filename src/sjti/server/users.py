"""The users table: create, look up, note logins. Sync SQLAlchemy Core on the engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from ..stores._revocation import utc_now
from .db import users

__all__ = ["DuplicateUserError", "User", "create_user", "get_by_id", "get_by_name", "note_login"]


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


def get_by_name(engine: Engine, username: str) -> tuple[User, str] | None:
    """The user and its password hash, for a login."""
    with engine.connect() as conn:
        row = conn.execute(
            select(*_PUBLIC, users.c.password_hash).where(users.c.username == username)
        ).one_or_none()
    if row is None:
        return None
    return User(*row[:6]), row.password_hash


def get_by_id(engine: Engine, user_id: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(*_PUBLIC).where(users.c.id == user_id)).one_or_none()
    return None if row is None else User(*row)


def note_login(engine: Engine, user_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=utc_now()))
