"""Django REST framework: ``sjti.drf.SjtiAuthentication`` and the token views.

The implementation lives in :mod:`sjti.django` (add ``"sjti.django"`` to
``INSTALLED_APPS``); this module is the short import path::

    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["sjti.drf.SjtiAuthentication"]}

The views (``TokenObtainPairView``...) load on first access: DRF imports its
authentication classes while ``rest_framework.views`` is still loading, so this module
must not import that one at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .django.drf import (
    ServiceUnavailable,
    SjtiAuthentication,
    SjtiStatelessAuthentication,
    TokenRefused,
    TokenUser,
)

if TYPE_CHECKING:
    from .django.views import (
        LogoutAllView,
        LogoutView,
        TokenBlacklistView,
        TokenObtainPairView,
        TokenRefreshView,
        TokenVerifyView,
    )

__all__ = [
    "LogoutAllView",
    "LogoutView",
    "ServiceUnavailable",
    "SjtiAuthentication",
    "SjtiStatelessAuthentication",
    "TokenBlacklistView",
    "TokenObtainPairView",
    "TokenRefreshView",
    "TokenRefused",
    "TokenUser",
    "TokenVerifyView",
]

_VIEWS = frozenset(
    {
        "LogoutAllView",
        "LogoutView",
        "TokenBlacklistView",
        "TokenObtainPairView",
        "TokenRefreshView",
        "TokenVerifyView",
    }
)


def __getattr__(name: str) -> Any:
    if name in _VIEWS:
        from .django import views

        return getattr(views, name)
    raise AttributeError(f"module 'sjti.drf' has no attribute {name!r}")
