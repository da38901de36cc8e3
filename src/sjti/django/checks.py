"""System checks: ``settings.SJTI`` validated at start-up (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from ..errors import ConfigurationError

__all__ = ["check_settings", "register"]


def check_settings(app_configs: Any = None, **_kwargs: Any) -> list[checks.CheckMessage]:
    """``sjti.E001``: ``settings.SJTI`` or the database it implies is not usable.
    ``sjti.W001``: SQLite without ``"transaction_mode": "IMMEDIATE"`` (grants may then
    fail with "database is locked" while a revocation runs instead of waiting)."""
    from django.db import connections

    from . import _runtime, _tables

    try:
        _settings, options = _runtime.settings()
        _tables.layout(options)
    except ConfigurationError as exc:
        return [
            checks.Error(
                str(exc),
                hint="see docs/configuration.md (names) and docs/integrations.md (Django)",
                obj="settings.SJTI",
                id="sjti.E001",
            )
        ]
    found: list[checks.CheckMessage] = []
    database = connections[options.database_alias].settings_dict
    if database.get("ENGINE") == "django.db.backends.sqlite3":
        mode = (database.get("OPTIONS") or {}).get("transaction_mode")
        if mode != "IMMEDIATE":
            found.append(
                checks.Warning(
                    "SQLite without OPTIONS['transaction_mode'] = 'IMMEDIATE': a token grant "
                    "racing a revocation fails instead of waiting",
                    obj=f"DATABASES[{options.database_alias!r}]",
                    id="sjti.W001",
                )
            )
    return found


def register() -> None:
    checks.register(check_settings, "sjti")
