"""Refresh tokens for Django: the reference service's semantics on the ORM.

A refresh token is sjti's opaque split token ``id.secret.mac`` (the ``session``
strategy's format, MAC'd with the key file's refresh key): forged or garbled tokens are
dropped before any query, and the table keeps only ``SHA-256(secret)``. Tokens come in
families (one per signed-in device). Every use **rotates**: the token is marked used with
``UPDATE ... WHERE used = false`` and a new one joins the family. A used token presented
again is **reuse**: the family ends and the user's key rotates, in one store transaction
(with the audit and event rows).

Grants are serialised against revocations on the row that holds the user's key: both the
password grant and the refresh grant run in ``transaction.atomic()`` that first locks that
row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite set ``"transaction_mode":
"IMMEDIATE"`` so the grant takes the write lock up front), and sign the access token with
the key read *from the locked row*. A revocation locks the same row, so either it commits
first (the grant finds its family ended, or the key it signs with is the new one) or it
waits for the grant (and then ends the family the grant extended).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from .._core.binding import UserKey
from .._core.codec import b64url_encode
from .._core.strategies import session as split
from ..errors import BackendError, SjtiError
from . import keys
from ._runtime import runtime
from .models import RefreshFamily, RefreshToken

__all__ = [
    "AccountChanged",
    "InvalidRefreshToken",
    "Minted",
    "ReuseDetected",
    "end_family",
    "lookup",
    "mint_for_login",
    "rotate",
]


class InvalidRefreshToken(Exception):
    """Unknown, forged, expired, used-up or revoked refresh token (one answer for all)."""


class ReuseDetected(InvalidRefreshToken):
    """A rotated token came back: its family ended and its user's key rotated."""

    def __init__(self, user_id: str, family_id: str) -> None:
        super().__init__("refresh token reuse")
        self.user_id = user_id
        self.family_id = family_id


class AccountChanged(Exception):
    """The user's key changed (a revocation) while the password was checked: retry."""


@dataclass(frozen=True, slots=True)
class Minted:
    """A committed grant: the refresh token, the user, and the key read under the lock."""

    refresh: str
    family_id: str
    user: Any
    key: UserKey


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _token_row(user_id: str, family_id: str, now: datetime) -> tuple[str, RefreshToken]:
    rt = runtime()
    ttl = rt.auth.settings.refresh_ttl
    token, record = split.mint(
        rt.auth.material.refresh_key, user=user_id, now_ms=_now_ms(), ttl_ms=ttl * 1000
    )
    row = RefreshToken(
        id=record.key,
        family_id=family_id,
        verifier_hash=record.verifier_hash.hex(),
        used=False,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    return token, row


def _locked_user(user_pk: Any) -> Any | None:
    """The user with their key, the key's row locked until commit."""
    if runtime().options.secrets == "one_to_one":
        # Lock the key's row, the user joined (inner join: PostgreSQL cannot lock the
        # nullable side of the user -> key outer join); the user's key cache is set too.
        from .models import UserTokenSecret

        holder = (
            UserTokenSecret.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=user_pk)
            .first()
        )
        return None if holder is None else holder.user
    return keys.user_queryset().filter(pk=user_pk).select_for_update().first()


def _atomic() -> Any:
    return transaction.atomic(using=runtime().options.database_alias)


def _key_of(user: Any) -> UserKey:
    key = keys.key_from_user(user)
    if key is None:  # ensure_key() ran before the grant; a deletion could race it
        raise AccountChanged()
    return key


def mint_for_login(
    user: Any,
    *,
    before: int | None,
    user_agent: str | None,
    ip: str | None,
    legacy_jti: str | None = None,
) -> Minted:
    """Password grant (after the password check): a new family and its first token.

    ``before``: the user's key version read when the request started, before the password
    check; compared under the lock: if a revocation committed in between,
    :class:`AccountChanged` (answer 503, retry). The one move allowed is 0 -> 1 (the user's
    first key, made here). ``legacy_jti``: a legacy refresh token exchanged once (a second
    exchange of the same token is reuse).
    """
    keys.ensure_key(user)
    now = timezone.now()
    family_id = secrets.token_urlsafe(12)
    token, row = _token_row(str(user.pk), family_id, now)
    with _atomic():
        locked = _locked_user(user.pk)
        if locked is None or not locked.is_active:
            raise AccountChanged()
        key = _key_of(locked)
        current = keys.key_state(locked).version
        if before is not None and current != before and (before, current) != (0, 1):
            raise AccountChanged()
        RefreshFamily.objects.create(
            id=family_id,
            user_id=locked.pk,
            created_at=now,
            last_used_at=now,
            user_agent=(user_agent or "")[:256] or None,
            ip=(ip or "")[:64] or None,
        )
        row.save(force_insert=True)
        if legacy_jti is not None:
            _mark_legacy_exchanged(legacy_jti, family_id, now, str(locked.pk))
    return Minted(token, family_id, locked, key)


def _mark_legacy_exchanged(jti: str, family_id: str, now: datetime, user_id: str) -> None:
    """A used marker row for a legacy refresh token: exchanging it twice is reuse."""
    marker = "L" + b64url_encode(hashlib.sha256(jti.encode("utf-8")).digest()).decode()[:31]
    try:
        with transaction.atomic(using=runtime().options.database_alias):
            RefreshToken.objects.create(
                id=marker,
                family_id=family_id,
                verifier_hash="",
                used=True,
                created_at=now,
                expires_at=now,
            )
    except IntegrityError:
        raise ReuseDetected(user_id, family_id) from None


def _parse(token: str) -> tuple[str, bytes]:
    rt = runtime()
    try:
        parsed = split.check_mac(token, rt.auth.material.refresh_key)
    except SjtiError:
        raise InvalidRefreshToken() from None
    return b64url_encode(parsed.id).decode("ascii"), parsed.secret


def rotate(token: str) -> Minted:
    """Refresh grant: use ``token`` once; a new token of its family and the user's key.

    Reuse (a used token again) ends the family and rotates the user's key before
    :class:`ReuseDetected` is raised; anything else wrong is :class:`InvalidRefreshToken`.
    """
    token_id, secret = _parse(token)
    now = timezone.now()
    owner = (
        RefreshToken.objects.filter(pk=token_id).values_list("family__user_id", flat=True).first()
    )
    if owner is None:
        raise InvalidRefreshToken()
    try:
        with _atomic():
            locked = _locked_user(owner)
            row = RefreshToken.objects.select_related("family").filter(pk=token_id).first()
            if (
                locked is None
                or row is None
                or not hmac.compare_digest(split.verifier_hash(secret).hex(), row.verifier_hash)
            ):
                raise InvalidRefreshToken()
            if row.family.revoked or row.expires_at <= now or not locked.is_active:
                raise InvalidRefreshToken()
            claimed = RefreshToken.objects.filter(pk=token_id, used=False).update(used=True)
            if claimed != 1:
                raise ReuseDetected(str(owner), row.family_id)  # rolls back: nothing changed
            key = _key_of(locked)
            new_token, new_row = _token_row(str(owner), row.family_id, now)
            new_row.save(force_insert=True)
            RefreshFamily.objects.filter(pk=row.family_id).update(last_used_at=now)
    except ReuseDetected as reuse:
        keys.revoke(
            [reuse.user_id],
            actor="sjti:refresh-reuse",
            reason="refresh token reused",
            end_family=reuse.family_id,
        )
        raise
    return Minted(new_token, row.family_id, locked, key)


def lookup(token: str) -> tuple[str, str] | None:
    """(user id, family id) of a live refresh token, without using it."""
    try:
        token_id, secret = _parse(token)
    except InvalidRefreshToken:
        return None
    row = RefreshToken.objects.select_related("family").filter(pk=token_id).first()
    if row is None or row.used or row.family.revoked or row.expires_at <= timezone.now():
        return None
    if not hmac.compare_digest(split.verifier_hash(secret).hex(), row.verifier_hash):
        return None
    return str(row.family.user_id), row.family_id


def end_family(family_id: str, *, user_id: str | None = None) -> bool:
    """End one family (its refresh tokens are refused from now on); False if it was
    already ended or is not ``user_id``'s."""
    queryset = RefreshFamily.objects.filter(pk=family_id, revoked=False)
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    try:
        ended: int = queryset.update(revoked=True, revoked_at=timezone.now())
    except DatabaseError as exc:
        raise BackendError("database unavailable") from exc
    return ended == 1
