"""SQLAlchemy tables declared from the Django models, for sjti's store to write on.

Declared, not reflected: no query at start-up, and the names come from the models'
``_meta`` (never from input). Only the columns sjti touches are declared.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import models
from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, SmallInteger, Table, Text
from sqlalchemy.types import TypeEngine

from ..errors import ConfigurationError
from ..stores._schema import UtcDateTime
from ..stores.sql import AppUsersTable, secret_columns
from .conf import DjangoOptions

__all__ = ["families_table", "id_type", "layout", "secret_model"]

_INT_TYPES = {
    "AutoField": Integer,
    "IntegerField": Integer,
    "PositiveIntegerField": Integer,
    "BigAutoField": BigInteger,
    "BigIntegerField": BigInteger,
    "PositiveBigIntegerField": BigInteger,
    "SmallAutoField": SmallInteger,
    "SmallIntegerField": SmallInteger,
}
_TEXT_TYPES = frozenset({"CharField", "TextField", "SlugField", "EmailField"})


def id_type() -> TypeEngine[Any]:
    """The SQLAlchemy type of the user model's primary key (int or text ids only)."""
    pk = get_user_model()._meta.pk
    if pk is None:  # pragma: no cover - every concrete model has one
        raise ConfigurationError("the user model has no primary key")
    kind = pk.get_internal_type()
    if kind == "ForeignKey" or kind == "OneToOneField":
        kind = pk.target_field.get_internal_type()
    if kind in _INT_TYPES:
        return _INT_TYPES[kind]()
    if kind in _TEXT_TYPES:
        return Text()
    raise ConfigurationError(
        f"sjti.django supports integer and text user primary keys, not {kind} "
        "(a UUID is stored in another spelling than its text)"
    )


def secret_model(options: DjangoOptions) -> type[models.Model]:
    """The model whose rows hold the secret columns."""
    if options.secrets == "user_model":
        user = get_user_model()
        names = {f.column for f in user._meta.concrete_fields}
        missing = [c.name for c in secret_columns() if c.name not in names]
        if missing:
            raise ConfigurationError(
                f"SJTI['SECRETS'] = 'user_model' but {user.__name__} lacks {missing}: add "
                "sjti.django.models.TokenSecretFields to it"
            )
        model: type[models.Model] = user
        return model
    from .models import UserTokenSecret

    return UserTokenSecret


def layout(options: DjangoOptions) -> AppUsersTable:
    """The ``AppUsersTable`` layout over the Django table holding the secrets."""
    model = secret_model(options)
    pk = model._meta.pk
    if pk is None:  # pragma: no cover - every concrete model has one
        raise ConfigurationError(f"{model.__name__} has no primary key")
    table = Table(
        model._meta.db_table,
        MetaData(),
        Column(pk.column, id_type(), primary_key=True),
        *secret_columns(),
    )
    return AppUsersTable(table, id_column=pk.column)


def families_table() -> Table:
    """The refresh families, for the ``also=`` part of a revocation's transaction."""
    from .models import RefreshFamily

    return Table(
        RefreshFamily._meta.db_table,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("user_id", id_type()),
        Column("revoked", Boolean),
        Column("revoked_at", UtcDateTime),
    )
