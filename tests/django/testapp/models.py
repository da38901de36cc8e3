"""A custom user model with sjti's key columns (SECRETS = "user_model")."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser

from sjti.django.models import TokenSecretFields


class User(TokenSecretFields, AbstractUser):
    class Meta:
        app_label = "testapp"
