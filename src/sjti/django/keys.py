"""User keys from Django: read with the ORM (with the user, one query), written by sjti's
store (its own connection and transaction), revoked with every live refresh family.

Reads go through the ORM so they ride on the user load the request makes anyway. Writes
(the first key, rotations) go through :class:`sjti.stores.sql.SqlSecretStore` over the same
table, so every revocation keeps sjti's properties: **one transaction** writing the key
rotation, the end of the user's refresh families, the audit row and the event row; the
event relayed to the bus (Redis or PostgreSQL NOTIFY) after the commit.

Transactions (see docs/integrations.md, "Django"): the store writes on its own
connection. Called outside ``transaction.atomic()``, :func:`revoke` has committed when it
returns. Called inside an atomic block it is deferred to ``transaction.on_commit``: it
runs right after your transaction commits (and not at all if it rolls back). Running it at
once would commit it independently of your block and, on PostgreSQL, wait forever for a
row lock your own uncommitted transaction holds (any save of that user), or on SQLite for
the database lock.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, transaction
from sqlalchemy import update

from .._core.binding import UserKey, check_sjti
from ..errors import RevokedTokenError
from ..legacy import KeyState
from ..stores._ops import Execute, Plan
from ..stores._revocation import utc_now
from ..stores.base import RevocationResult, UnknownUserError
from ..stores.layouts import user_key_from_row
from ._runtime import Runtime, runtime

__all__ = [
    "ensure_key",
    "key_from_user",
    "key_state",
    "load_user",
    "revoke",
    "revoke_families_plan",
    "secret_holder",
]

logger = logging.getLogger("sjti.django")
_COLUMNS = ("token_secret", "token_version", "token_rotated_at", "token_devices")


def secret_holder(user: models.Model) -> models.Model | None:
    """The object carrying the secret columns: the user itself, or its one-to-one row
    (``None``: no key yet). Never queries if the user was loaded by :func:`load_user`."""
    if runtime().options.secrets == "user_model":
        return user
    try:
        holder: models.Model = user.sjti_secret
    except models.ObjectDoesNotExist:
        return None
    return holder


def _row(user_id: str, holder: models.Model) -> Mapping[str, Any]:
    layout = runtime().layout
    row = {
        layout.id_column: user_id,
        layout.secret_column: getattr(holder, "token_secret", None),
    }
    devices = getattr(layout, "devices_column", None)
    if devices is not None:
        row[devices] = getattr(holder, devices, None)
    return row


def key_from_user(user: models.Model) -> UserKey | None:
    """The user's key from the loaded row (no query); ``None``: the user has none yet.
    A secret that does not open raises :class:`~sjti.UnwrapError` (fail closed)."""
    holder = secret_holder(user)
    if holder is None or getattr(holder, "token_secret", None) is None:
        return None
    return user_key_from_row(_row(str(user.pk), holder), runtime().auth.kek_ring, runtime().layout)


def key_state(user: models.Model) -> KeyState:
    """Version and last rotation of the user's key, for :class:`sjti.LegacyTokens`."""
    holder = secret_holder(user)
    if holder is None:
        return KeyState(0, None)
    return KeyState(
        int(getattr(holder, "token_version", 0) or 0), getattr(holder, "token_rotated_at", None)
    )


def user_queryset() -> models.QuerySet:
    """Users with their secret in the same SELECT (a join in the one-to-one mode)."""
    manager = get_user_model()._default_manager
    if runtime().options.secrets == "one_to_one":
        return manager.select_related("sjti_secret")
    return manager.all()


def canonical_pk(user_id: str) -> Any | None:
    """The primary key a token's ``sub`` names, or ``None`` if ``sub`` is not exactly its
    text ("042" is not user 42: that user's key is bound to the text "42")."""
    pk_field = get_user_model()._meta.pk
    try:
        pk = pk_field.to_python(user_id)
    except Exception:
        return None
    return pk if pk is not None and str(pk) == user_id else None


def load_user(user_id: str) -> Any | None:
    """The user named by a token's ``sub`` with its secret: **one** query. ``None`` when
    there is no such user."""
    pk = canonical_pk(user_id)
    if pk is None:
        return None
    return user_queryset().filter(pk=pk).first()


def verified_user(claims: dict[str, Any]) -> Any:
    """The user layer on boundary-verified claims: the user (loaded with the key, one
    query), or :class:`~sjti.RevokedTokenError` for a stale ``sjti``, an unknown, disabled
    or keyless user (all refused alike)."""
    user = load_user(str(claims["sub"]))
    if user is None or not user.is_active:
        raise RevokedTokenError()
    key = key_from_user(user)
    if key is None:
        raise RevokedTokenError()
    check_sjti(claims, key)
    return user


def ensure_key(user: models.Model) -> UserKey:
    """The user's key, made now if they have none (lazy secrets: a key on first issue).

    Runs on sjti's connection: call it outside an atomic block (SQLite would wait for your
    transaction's lock)."""
    key = key_from_user(user)
    if key is not None:
        return key
    rt = runtime()
    if rt.options.secrets == "one_to_one":
        _insert_holder(rt, user.pk)
    key = rt.store.ensure(str(user.pk))
    if rt.options.secrets == "one_to_one":
        _forget_cached_holder(user)
    else:
        user.refresh_from_db(fields=list(_COLUMNS))
    return key


def _forget_cached_holder(user: models.Model) -> None:
    cache = getattr(user, "_state", None)
    if cache is not None:
        cache.fields_cache.pop("sjti_secret", None)


def _insert_holder(rt: Runtime, pk: Any) -> None:
    """The one-to-one row (secret NULL) if absent; the store then fills the secret."""
    table = rt.layout.table
    engine = rt.store.engine
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(table)
        .values({rt.layout.id_column: pk, rt.layout.version_column: 0})
        .on_conflict_do_nothing(index_elements=[rt.layout.id_column])
    )
    with engine.begin() as conn:
        conn.execute(statement)


def revoke_families_plan(rt: Runtime, keep: str | None = None) -> Any:
    """The ``also=`` part of a revocation: every live refresh family of the selected
    users (but ``keep``) ends in the revocation's own transaction."""
    families = rt.families

    def plan(user_ids: Sequence[Any]) -> Plan[None]:
        now = utc_now()
        for start in range(0, len(user_ids), 500):
            chunk = list(user_ids[start : start + 500])
            where: list[Any] = [families.c.user_id.in_(chunk), families.c.revoked.is_(False)]
            if keep is not None:
                where.append(families.c.id != keep)
            yield Execute(update(families).where(*where).values(revoked=True, revoked_at=now))

    return plan


def end_family_plan(rt: Runtime, family_id: str) -> Any:
    """The ``also=`` part of reuse detection and logout: that one family."""
    families = rt.families

    def plan(_user_ids: Sequence[Any]) -> Plan[None]:
        yield Execute(
            update(families)
            .where(families.c.id == family_id)
            .values(revoked=True, revoked_at=utc_now())
        )

    return plan


def revoke(
    user_ids: Iterable[Any],
    *,
    actor: str,
    reason: str,
    end_family: str | None = None,
    end_families: bool = True,
    using: str | None = None,
) -> RevocationResult | None:
    """Refuse every token of these users from now on (a new key each), and end their
    refresh families, in one store transaction with its audit and event rows.

    Outside an atomic block: committed on return (the result). Inside one: deferred to
    ``on_commit`` (returns ``None``). ``end_family``: end only that family (reuse
    detection, logout) instead of all of them; ``end_families=False``: end none (the
    other devices refresh and get tokens under the new key).
    """
    ids = sorted({str(uid) for uid in user_ids})
    if not ids:
        return None
    alias = using or runtime().options.database_alias
    if transaction.get_connection(alias).in_atomic_block:
        transaction.on_commit(
            lambda: _revoke_now(ids, actor, reason, end_family, end_families),
            using=alias,
            robust=False,
        )
        return None
    return _revoke_now(ids, actor, reason, end_family, end_families)


def _revoke_now(
    ids: Collection[str], actor: str, reason: str, end_family: str | None, end_families: bool
) -> RevocationResult:
    rt = runtime()
    _give_keys(rt, ids)
    also = None
    if end_family is not None:
        also = end_family_plan(rt, end_family)
    elif end_families:
        also = revoke_families_plan(rt)
    if len(ids) == 1:
        (only,) = ids
        result = rt.store.revoke(only, actor=actor, reason=reason, also=also)
    else:
        result = rt.store.revoke_many(ids, actor=actor, reason=reason, also=also)
    logger.info("revoked %s user(s) (audit #%s, by %s)", result.count, result.audit_id, actor)
    return result


def _give_keys(rt: Runtime, ids: Collection[str]) -> None:
    """A revocation rotates keys; a user who has none yet (lazy secrets) gets one first,
    so the rotation marks them revoked (``token_version`` 2): their legacy tokens and any
    token minted before are refused too."""
    holders = {str(pk) for pk in _with_secret(rt, ids)}
    for uid in ids:
        if uid in holders:
            continue
        user = load_user(uid)
        if user is None:
            continue
        try:
            ensure_key(user)
        except UnknownUserError:  # deleted meanwhile
            continue


def _with_secret(rt: Runtime, ids: Collection[str]) -> list[Any]:
    from ._tables import secret_model

    model = secret_model(rt.options)
    return list(
        model._default_manager.filter(pk__in=list(ids), token_secret__isnull=False).values_list(
            "pk", flat=True
        )
    )
