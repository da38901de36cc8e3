"""Password hashing (argon2id) with constant work for unknown users, and the policy."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "Passwords", "password_problem"]

MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 takes any length; the cap bounds the work a request can cause


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` is too weak, or ``None``. The message never quotes the password."""
    if len(password) < MIN_PASSWORD:
        return f"password must have at least {MIN_PASSWORD} characters"
    if len(set(password)) < 5:
        return "password must use at least 5 different characters"
    if username and username.lower() in password.lower():
        return "password must not contain the username"
    return None


class Passwords:
    """argon2id hashing; :meth:`verify` of an unknown user costs the same as a real one."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher(type=Type.ID)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches ``stored``; with ``stored=None`` hash anyway, False."""
        try:
            ok = self._hasher.verify(stored if stored is not None else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and stored is not None
