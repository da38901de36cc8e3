"""Where user keys live: on your user model (a mixin) or in a one-to-one model of this app.

Either way the columns are the ones :func:`sjti.stores.sql.secret_columns` declares
(``token_secret``, ``token_version``, ``token_rotated_at``, ``token_devices``), so sjti's SQL store
(``AppUsersTable`` layout) revokes on the very table the ORM reads:

* ``SJTI["SECRETS"] = "user_model"``: add :class:`TokenSecretFields` to your custom user
  model (``class User(TokenSecretFields, AbstractUser)``) and make a migration.
* ``SJTI["SECRETS"] = "one_to_one"`` (default): :class:`UserTokenSecret`, one row per
  user that has a key, created on the user's first token (this app's migrations).

The secret is stored wrapped under the KEK ring (``v1.<kek id>.<base64url>``), never in
clear. Refresh tokens are :class:`RefreshFamily` (one per signed-in device) and
:class:`RefreshToken` rows holding ``SHA-256`` of the token's secret, never the token.
:class:`RevocationAudit` is a read-only view of sjti's audit table for the admin.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

__all__ = [
    "RefreshFamily",
    "RefreshToken",
    "RevocationAudit",
    "TokenSecretFields",
    "UserTokenSecret",
]


_SJTI_FIELDS = frozenset({"token_secret", "token_version", "token_rotated_at", "token_devices"})


class TokenSecretFields(models.Model):
    """The columns sjti's ``AppUsersTable`` layout reads and rotates.

    Only sjti's store writes them. :meth:`save` of an existing row leaves them out (unless
    ``update_fields`` names them): a user instance loaded before a revocation and saved
    after it would otherwise write the old key back and undo the revocation.
    """

    token_secret = models.TextField(null=True, blank=True, editable=False)  # wrapped
    token_version = models.IntegerField(default=0, db_default=0, editable=False)
    token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    token_devices = models.TextField(null=True, blank=True, editable=False)  # per-device state

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and kwargs.get("update_fields") is None and not args:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in _SJTI_FIELDS
            ]
        super().save(*args, **kwargs)


class UserTokenSecret(TokenSecretFields):
    """The user's key, beside the user (``SECRETS = "one_to_one"``)."""

    user: Any = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="sjti_secret",
    )

    class Meta:
        db_table = "sjti_user_token_secret"
        verbose_name = "token key"

    def __str__(self) -> str:
        return f"token key of user {self.pk} (version {self.token_version})"


class RefreshFamily(models.Model):
    """One signed-in device: the chain of refresh tokens that rotate into each other."""

    id = models.CharField(max_length=32, primary_key=True)
    user: Any = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sjti_refresh_families"
    )
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField()
    user_agent = models.CharField(max_length=256, null=True, blank=True)
    ip = models.CharField(max_length=64, null=True, blank=True)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sjti_refresh_family"
        indexes = [  # noqa: RUF012 - Django's Meta options are plain lists
            models.Index(fields=["user", "revoked"], name="sjti_family_user_live")
        ]
        verbose_name_plural = "refresh families"

    def __str__(self) -> str:
        return f"device session {self.id} of user {self.user_id}"


class RefreshToken(models.Model):
    """One refresh token: its id and ``SHA-256(secret)``; the token itself is never kept."""

    id = models.CharField(max_length=32, primary_key=True)
    family: Any = models.ForeignKey(RefreshFamily, on_delete=models.CASCADE, related_name="tokens")
    verifier_hash = models.CharField(max_length=64)
    used = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "sjti_refresh_token"

    def __str__(self) -> str:
        return f"refresh token {self.id}"


class RevocationAudit(models.Model):
    """sjti's audit table (one row per revocation), read-only: the store writes it."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField()
    actor = models.TextField(null=True)
    reason = models.TextField(null=True)
    kind = models.CharField(max_length=32)
    count = models.IntegerField()
    detail = models.TextField(null=True)

    class Meta:
        managed = False  # created and written by sjti's store (sjti.stores.migrations)
        db_table = "sjti_revocation_audit"
        ordering = ["-id"]  # noqa: RUF012 - Django's Meta options are plain lists
        verbose_name = "token revocation"

    def __str__(self) -> str:
        return f"revocation #{self.id} ({self.kind}, {self.count} users)"
