"""An in-memory secret store for examples and unit tests. Not for production: it forgets
everything when the process ends and is not shared between processes."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .._core.binding import UserKey
from .._core.wrapping import Kek, KekRing, WrappedSecret, generate_user_key
from .base import (
    AuditRecord,
    Cohort,
    RevocationListener,
    RevocationResult,
    UnknownUserError,
)

__all__ = ["MemorySecretStore", "MemoryUser"]


@dataclass(slots=True)
class MemoryUser:
    """One user's row: the wrapped key plus the attributes cohorts select on."""

    wrapped: WrappedSecret | None = None
    version: int = 0
    rotated_at: datetime | None = None
    attributes: dict[str, object] = field(default_factory=dict)


class MemorySecretStore:
    """Implements :class:`sjti.stores.base.SecretStore` with a dict and a lock.

    Cohort fields map to user attributes of the same name (``tenant``, ``role``,
    ``created_at``, ``last_login_at`` and any ``equals`` key), set with :meth:`add_user`.
    """

    def __init__(self, kek_ring: KekRing | None = None) -> None:
        self._ring = kek_ring or KekRing([Kek.generate("memory")])
        self._users: dict[str, MemoryUser] = {}
        self._audit: list[AuditRecord] = []
        self._listeners: list[RevocationListener] = []
        self._lock = threading.Lock()

    # -- app-side helpers ---------------------------------------------------------------

    def add_user(self, user_id: str, **attributes: object) -> None:
        """Register a user (without a secret yet) with attributes for cohort selection."""
        with self._lock:
            self._users.setdefault(user_id, MemoryUser()).attributes.update(attributes)

    # -- SecretStore --------------------------------------------------------------------

    def load(self, user_id: str) -> UserKey | None:
        with self._lock:
            user = self._users.get(user_id)
            wrapped = user.wrapped if user is not None else None
        return UserKey(self._ring.unwrap(user_id, wrapped)) if wrapped is not None else None

    def ensure(self, user_id: str) -> UserKey:
        with self._lock:
            user = self._users.setdefault(user_id, MemoryUser())
            wrapped = user.wrapped or self._rotate(user_id, user)
        return UserKey(self._ring.unwrap(user_id, wrapped))

    def revoke(
        self, user_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult:
        with self._lock:
            user = self._users.get(user_id)
            if user is None or user.wrapped is None:
                raise UnknownUserError()
        return self._revoke_ids([user_id], actor, reason, "user", "1 user", dry_run=False)

    def revoke_many(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        ids = sorted(set(user_ids))
        return self._revoke_ids(ids, actor, reason, "users", f"{len(ids)} ids", dry_run=dry_run)

    def revoke_cohort(
        self,
        cohort: Cohort,
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        if cohort.is_empty():
            raise ValueError("a cohort needs at least one criterion")
        with self._lock:
            ids = sorted(uid for uid, user in self._users.items() if _selects(cohort, uid, user))
        return self._revoke_ids(ids, actor, reason, "cohort", _describe(cohort), dry_run=dry_run)

    def audit_log(self, *, limit: int = 100) -> list[AuditRecord]:
        with self._lock:
            return list(reversed(self._audit))[:limit]

    def add_listener(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    # -- internals ----------------------------------------------------------------------

    def _rotate(self, user_id: str, user: MemoryUser) -> WrappedSecret:
        user.wrapped = self._ring.wrap(user_id, generate_user_key())
        user.version += 1
        user.rotated_at = datetime.now(UTC)
        return user.wrapped

    def _revoke_ids(
        self,
        ids: list[str],
        actor: str | None,
        reason: str | None,
        kind: str,
        detail: str,
        *,
        dry_run: bool,
    ) -> RevocationResult:
        with self._lock:
            known = [uid for uid in ids if uid in self._users and self._users[uid].wrapped]
            if dry_run:
                return RevocationResult(len(known), tuple(known), True, None)
            for uid in known:
                self._rotate(uid, self._users[uid])
            record = AuditRecord(
                id=len(self._audit) + 1,
                at=datetime.now(UTC),
                actor=actor,
                reason=reason,
                kind=kind,
                count=len(known),
                detail=detail,
            )
            self._audit.append(record)
        for listener in self._listeners:
            listener(known)
        return RevocationResult(len(known), tuple(known), False, record.id)


def _selects(cohort: Cohort, user_id: str, user: MemoryUser) -> bool:
    if user.wrapped is None:
        return False
    attrs: Mapping[str, object] = user.attributes
    checks: list[bool] = []
    if cohort.user_ids is not None:
        checks.append(user_id in cohort.user_ids)
    if cohort.tenant is not None:
        checks.append(attrs.get("tenant") == cohort.tenant)
    if cohort.role is not None:
        checks.append(attrs.get("role") == cohort.role)
    if cohort.created_before is not None:
        checks.append(_before(attrs.get("created_at"), cohort.created_before))
    if cohort.last_login_before is not None:
        checks.append(_before(attrs.get("last_login_at"), cohort.last_login_before))
    if cohort.rotated_before is not None:
        checks.append(_before(user.rotated_at, cohort.rotated_before))
    checks.extend(attrs.get(name) == value for name, value in cohort.equals.items())
    return all(checks)


def _before(value: object, limit: datetime) -> bool:
    return isinstance(value, datetime) and value < limit


def _describe(cohort: Cohort) -> str:
    """A secret-free summary of the criteria, for the audit trail."""
    parts = [
        f"{name}={getattr(cohort, name)}"
        for name in ("tenant", "role", "created_before", "last_login_before", "rotated_before")
        if getattr(cohort, name) is not None
    ]
    if cohort.user_ids is not None:
        parts.append(f"user_ids=<{len(cohort.user_ids)}>")
    parts.extend(f"{k}={v}" for k, v in sorted(cohort.equals.items()))
    return ", ".join(parts)
