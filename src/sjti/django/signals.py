"""Revocation on a password change and on deactivation (``is_active`` set to False);
caches told when a user is deleted.

``pre_save`` notes what changed (``set_password`` leaves ``user._password`` set until the
save; ``is_active`` is compared with the stored value only when it is now False);
``post_save`` revokes through :func:`sjti.django.keys.revoke`: inside a transaction it runs
right after the commit (so the password and the revocation are both in force, or neither);
in autocommit at once. Every access and refresh token of the user ends.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save

__all__ = ["connect"]

_REASON = "_sjti_revoke_reason"


def _note_changes(sender: Any, instance: Any, raw: bool = False, **_kwargs: Any) -> None:
    if raw or instance.pk is None or instance._state.adding:
        return
    update_fields = _kwargs.get("update_fields")
    reasons = []
    if getattr(instance, "_password", None) is not None and (
        update_fields is None or "password" in update_fields
    ):
        reasons.append("password changed")
    if getattr(instance, "is_active", True) is False and (
        update_fields is None or "is_active" in update_fields
    ):
        was_active = (
            sender._default_manager.filter(pk=instance.pk)
            .values_list("is_active", flat=True)
            .first()
        )
        if was_active:
            reasons.append("account deactivated")
    if reasons:
        setattr(instance, _REASON, ", ".join(reasons))


def _revoke_changed(
    sender: Any, instance: Any, created: bool = False, raw: bool = False, **_kwargs: Any
) -> None:
    reason = instance.__dict__.pop(_REASON, None)
    if reason is None or created or raw:
        return
    from .keys import revoke

    revoke([instance.pk], actor="django:signal", reason=reason, using=_kwargs.get("using"))


def _forget_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted user's cached key must not outlive the row: every node drops it (an
    event, after the delete commits; at once in autocommit)."""
    if instance.pk is None:
        return
    from django.db import transaction

    from ._runtime import runtime

    user_id = str(instance.pk)
    alias = kwargs.get("using") or runtime().options.database_alias

    def forget() -> None:
        runtime().store.forget([user_id], actor="django:signal", reason="user deleted")

    if transaction.get_connection(alias).in_atomic_block:
        transaction.on_commit(forget, using=alias, robust=False)
    else:
        forget()


def connect() -> None:
    user = get_user_model()
    pre_save.connect(_note_changes, sender=user, dispatch_uid="sjti.django.note")
    post_save.connect(_revoke_changed, sender=user, dispatch_uid="sjti.django.revoke")
    post_delete.connect(_forget_deleted, sender=user, dispatch_uid="sjti.django.forget")
