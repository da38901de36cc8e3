"""Read-only queries behind the pages: a user's security events, user search, the impact
breakdown of a selection, the filtered audit trail. Nothing here writes: every change
goes through the routes' revocation functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

from sqlalchemy import ColumnElement, Engine, MetaData, Table, and_, func, or_, select, true

from ...stores import _schema
from ...stores._revocation import describe_user
from ...stores.base import AuditRecord
from ..db import families, users
from ..services import Services
from ..users import _PUBLIC, User, user_from_row
from .useragent import device_label

__all__ = [
    "PAGE_SIZE",
    "AuditFilter",
    "SecurityEvent",
    "UserFilter",
    "audit_rows",
    "impact",
    "search_users",
    "user_events",
]

PAGE_SIZE: Final = 25
_CHUNK: Final = 500


@cache
def _log_tables(audit_name: str, events_name: str) -> tuple[Table, Table]:
    metadata = MetaData()
    return (
        _schema.audit_table(metadata, audit_name),
        _schema.events_table(metadata, events_name),
    )


def _tables(services: Services) -> tuple[Table, Table]:
    layout: Any = services.store.layout
    return _log_tables(layout.audit_table, layout.events_table)


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    at: datetime
    what: str
    detail: str


def _revocation_words(actor: str | None, reason: str | None, user_id: str) -> str:
    if reason and reason.startswith("refresh token reuse detected"):
        return (
            "Refresh token reuse detected: that device was signed out and all access tokens ended"
        )
    if actor == user_id:
        return "You ended your access tokens" + (f" ({reason})" if reason else "")
    who = actor or "an operator"
    return f"Access revoked by {who}" + (f": {reason}" if reason else "")


def user_events(services: Services, user_id: str, limit: int = 20) -> list[SecurityEvent]:
    """Sign-ins and device sign-outs (refresh families) and every revocation that named
    this user (its audit row), newest first."""
    audit, events = _tables(services)
    needle = f'"{user_id}"'
    with services.engine.connect() as conn:
        devices = conn.execute(
            select(families)
            .where(families.c.user_id == user_id)
            .order_by(families.c.created_at.desc())
            .limit(limit)
        ).all()
        named = select(events.c.audit_id).where(
            events.c.users.contains(needle, autoescape=True), events.c.audit_id.is_not(None)
        )
        revocations = conn.execute(
            select(audit)
            .where(or_(audit.c.detail == describe_user(user_id), audit.c.id.in_(named)))
            .order_by(audit.c.id.desc())
            .limit(limit)
        ).all()
    found: list[SecurityEvent] = []
    for d in devices:
        where = f"{device_label(d.user_agent)}" + (f", from {d.ip}" if d.ip else "")
        found.append(SecurityEvent(d.created_at, "Signed in", where))
        if d.revoked_at is not None:
            found.append(SecurityEvent(d.revoked_at, "Device signed out", where))
    for r in revocations:
        words = _revocation_words(r.actor, r.reason, user_id)
        found.append(SecurityEvent(r.at, words, f"audit #{r.id}"))
    found.sort(key=lambda e: e.at, reverse=True)
    return found[:limit]


@dataclass(frozen=True, slots=True)
class UserFilter:
    q: str | None = None
    role: str | None = None
    tenant: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    last_login_before: datetime | None = None


def _user_conditions(f: UserFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.q:
        where.append(
            or_(users.c.username.contains(f.q.strip().lower(), autoescape=True), users.c.id == f.q)
        )
    if f.role:
        where.append(users.c.role == f.role)
    if f.tenant:
        where.append(users.c.tenant == f.tenant)
    if f.created_after:
        where.append(users.c.created_at >= f.created_after)
    if f.created_before:
        where.append(users.c.created_at < f.created_before)
    if f.last_login_before:
        where.append(users.c.last_login_at < f.last_login_before)
    return where


def search_users(engine: Engine, f: UserFilter, page: int) -> tuple[list[User], int]:
    """One page of matching users (newest first) and how many match in all."""
    where = and_(true(), *_user_conditions(f))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(users).where(where)).scalar_one()
        rows = (
            conn.execute(
                select(*_PUBLIC)
                .where(where)
                .order_by(users.c.created_at.desc(), users.c.id)
                .limit(PAGE_SIZE)
                .offset((page - 1) * PAGE_SIZE)
            )
            .mappings()
            .all()
        )
    return [user_from_row(r) for r in rows], int(total)


@dataclass(frozen=True, slots=True)
class Impact:
    sample: list[User]
    by_tenant: list[tuple[str, int]]
    by_role: list[tuple[str, int]]


def impact(engine: Engine, user_ids: Sequence[str], sample: int = 10) -> Impact:
    """A sample of the selected users and their counts per tenant and per role."""
    tenants: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    shown: list[User] = []
    with engine.connect() as conn:
        for start in range(0, len(user_ids), _CHUNK):
            chunk = list(user_ids[start : start + _CHUNK])
            for row in conn.execute(
                select(users.c.tenant, users.c.role, func.count())
                .where(users.c.id.in_(chunk))
                .group_by(users.c.tenant, users.c.role)
            ):
                tenants[row[0] or "(none)"] += row[2]
                roles[row[1]] += row[2]
        if user_ids:
            rows = (
                conn.execute(
                    select(*_PUBLIC)
                    .where(users.c.id.in_(list(user_ids[:sample])))
                    .order_by(users.c.username)
                )
                .mappings()
                .all()
            )
            shown = [user_from_row(r) for r in rows]
    return Impact(shown, tenants.most_common(), roles.most_common())


@dataclass(frozen=True, slots=True)
class AuditFilter:
    kind: str | None = None
    actor: str | None = None
    text: str | None = None
    since: datetime | None = None


def audit_rows(
    services: Services, f: AuditFilter, *, limit: int, offset: int = 0
) -> tuple[list[AuditRecord], int]:
    """Matching audit rows, newest first, and how many match."""
    audit, _ = _tables(services)
    where: list[ColumnElement[bool]] = []
    if f.kind:
        where.append(audit.c.kind == f.kind)
    if f.actor:
        where.append(audit.c.actor.contains(f.actor, autoescape=True))
    if f.text:
        where.append(
            or_(
                audit.c.reason.contains(f.text, autoescape=True),
                audit.c.detail.contains(f.text, autoescape=True),
            )
        )
    if f.since:
        where.append(audit.c.at >= f.since)
    condition = and_(true(), *where)
    with services.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(audit).where(condition)).scalar_one()
        rows = (
            conn.execute(
                select(audit)
                .where(condition)
                .order_by(audit.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
            .mappings()
            .all()
        )
    records = [
        AuditRecord(
            id=int(r["id"]),
            at=r["at"],
            actor=r["actor"],
            reason=r["reason"],
            kind=r["kind"],
            count=int(r["count"]),
            detail=r["detail"],
        )
        for r in rows
    ]
    return records, int(total)
