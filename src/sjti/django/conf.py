"""``settings.SJTI``: one dict, the names of :class:`sjti.Settings` plus a few Django ones.

::

    SJTI = {
        "ISSUER": "https://api.example.com",
        "AUDIENCE": "api",
        "KEK": os.environ["SJTI_KEK"],
        "ENV": "production",
        # Django only:
        "SECRETS": "one_to_one",          # or "user_model" (TokenSecretFields on your user)
        "REALM": "api",                   # WWW-Authenticate realm (optional)
        "DATABASE_ALIAS": "default",      # where the secrets and sjti's tables live
        "LEGACY": {...},                  # the migration window (sjti.LegacyTokens kwargs)
    }

Every other name goes to :meth:`sjti.Settings.from_mapping` (``source="settings.SJTI"``),
so a typo is an error that names it. ``DATABASE_URL`` defaults to the database of
``DATABASE_ALIAS`` (SQLite or PostgreSQL): sjti writes with SQLAlchemy on its own
connections to the very same database. Checked at start-up by a system check
(``sjti.E001``...), so ``manage.py check`` reports a bad value before any request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from ..errors import ConfigurationError
from ..legacy import LegacyTokens
from ..settings import Settings

__all__ = ["DjangoOptions", "load", "sqlalchemy_url"]

SecretsMode = Literal["one_to_one", "user_model"]
_DJANGO_ONLY: Final = frozenset({"secrets", "realm", "database_alias", "legacy"})
_SOURCE: Final = "settings.SJTI"


@dataclass(frozen=True, slots=True)
class DjangoOptions:
    """The Django-only part of ``settings.SJTI``."""

    secrets: SecretsMode = "one_to_one"
    realm: str | None = None
    database_alias: str = "default"
    legacy: LegacyTokens | None = None


def _legacy(value: object) -> LegacyTokens | None:
    if value is None or isinstance(value, LegacyTokens):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{_SOURCE}['LEGACY'] must be a dict or a sjti.LegacyTokens")
    kwargs = {str(k).lower(): v for k, v in value.items()}
    until = kwargs.get("until")
    if isinstance(until, str):
        try:
            kwargs["until"] = datetime.fromisoformat(until)
        except ValueError:
            raise ConfigurationError(f"{_SOURCE}['LEGACY']['UNTIL'] is not an ISO date") from None
    try:
        return LegacyTokens(**kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"{_SOURCE}['LEGACY']: {exc}") from None


def split(raw: Mapping[str, object]) -> tuple[dict[str, object], DjangoOptions]:
    """``settings.SJTI`` as (the shared settings' values, the Django options)."""
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{_SOURCE} must be a dict")
    shared: dict[str, object] = {}
    django: dict[str, Any] = {}
    for name, value in raw.items():
        key = str(name).lower()
        if key in _DJANGO_ONLY:
            django[key] = value
        else:
            shared[str(name)] = value  # as written: an error names it as the user spelt it
    secrets = django.get("secrets", "one_to_one")
    if secrets not in ("one_to_one", "user_model"):
        raise ConfigurationError(
            f"{_SOURCE}['SECRETS'] must be 'one_to_one' or 'user_model'; got {secrets!r}"
        )
    realm = django.get("realm")
    if realm is not None and (not isinstance(realm, str) or '"' in realm or "\\" in realm):
        raise ConfigurationError(f"{_SOURCE}['REALM'] must be a string without quotes")
    alias = django.get("database_alias", "default")
    if not isinstance(alias, str) or not alias:
        raise ConfigurationError(f"{_SOURCE}['DATABASE_ALIAS'] must be a database alias")
    options = DjangoOptions(secrets, realm, alias, _legacy(django.get("legacy")))
    return shared, options


def sqlalchemy_url(settings_dict: Mapping[str, Any]) -> str:
    """The SQLAlchemy URL of a Django database (``connections[alias].settings_dict``).

    SQLite files and PostgreSQL (psycopg 3) only: sjti's store supports those two. An
    in-memory SQLite database cannot be shared with a second connection: refused.
    """
    from sqlalchemy.engine import URL

    engine = str(settings_dict.get("ENGINE", ""))
    name = settings_dict.get("NAME")
    if engine == "django.db.backends.sqlite3":
        text = str(name or "")
        if not text or text == ":memory:" or "mode=memory" in text:
            raise ConfigurationError(
                "sjti needs a SQLite *file* (an in-memory database cannot be shared with "
                "sjti's own connection; for tests set DATABASES[...]['TEST']['NAME'] to a file)"
            )
        return f"sqlite:///{text}"
    if engine in ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"):
        port = settings_dict.get("PORT")
        url = URL.create(
            "postgresql+psycopg",
            username=settings_dict.get("USER") or None,
            password=settings_dict.get("PASSWORD") or None,
            host=settings_dict.get("HOST") or None,
            port=int(port) if port else None,
            database=str(name) if name else None,
        )
        return url.render_as_string(hide_password=False)
    raise ConfigurationError(f"sjti supports SQLite and PostgreSQL databases, not {engine!r}")


def load(
    raw: Mapping[str, object], database: Mapping[str, Any] | None
) -> tuple[Settings, DjangoOptions]:
    """Validate ``settings.SJTI``; ``database`` (the alias's settings dict) supplies
    ``DATABASE_URL`` unless the dict sets one."""
    shared, options = split(raw)
    if not any(name.lower() == "database_url" for name in shared) and database is not None:
        shared["database_url"] = sqlalchemy_url(database)
    return Settings.from_mapping(shared, source=_SOURCE), options
