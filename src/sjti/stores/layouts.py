"""Where the SQL stores keep user secrets, and which columns cohorts select on.

Two layouts:

``OwnedTable(name="sjti_user_secrets")``
    A table sjti creates and owns: ``user_id`` (primary key, text), ``wrapped_secret``
    (``WrappedSecret.to_str()``), ``kek_id``, ``version`` (int), ``rotated_at`` (timestamp
    with time zone). A row appears on the user's first token (``ensure``). Cohorts select
    by ``user_ids`` and ``rotated_before``; for tenant, role, created/last-login dates the
    app passes :class:`CohortColumns` pointing at its own users table, joined on the id.

``AppUsersTable(table=users, id_column="id", ...)``
    The blog's ``ALTER TABLE users ADD COLUMN token_secret``: four columns on the
    application's own users table (``token_secret``, ``token_version``,
    ``token_rotated_at``, ``token_devices``; declare them with :func:`secret_columns`, add
    them to a live
    database with :func:`sjti.stores.migrations.add_secret_columns`). The app already
    loads the user row to authorize the request, so :func:`user_key_from_row` verifies
    the user layer from that row with zero extra queries. ``ensure`` fills the secret of
    an existing user; it never creates users (that stays the app's job).

Both layouts also name the audit table (``sjti_revocation_audit``), the revocation event
log (``sjti_revocation_events``) and the node registry (``sjti_nodes``). Every identifier
is a configured name validated here; callers never pass SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Column, Table

from .._core.binding import UserKey
from .._core.wrapping import KekRing
from ..errors import ConfigurationError
from . import _revocation as rv
from ._schema import secret_columns

__all__ = [
    "AppUsersTable",
    "CohortColumns",
    "Layout",
    "OwnedTable",
    "secret_columns",
    "user_key_from_row",
]

# Short enough that derived index names stay under PostgreSQL's 63-byte limit.
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ConfigurationError(f"{what} must match [A-Za-z_][A-Za-z0-9_]{{0,39}}")


def _check_log_names(layout: OwnedTable | AppUsersTable) -> None:
    _check_name("the audit table name", layout.audit_table)
    _check_name("the events table name", layout.events_table)
    _check_name("the nodes table name", layout.nodes_table)


def _column(table: Table, name: object, what: str) -> Column[Any]:
    if not isinstance(name, str) or name not in table.c:
        raise ConfigurationError(f"table {table.name!r} has no column for {what} ({name!r})")
    return table.c[name]


@dataclass(frozen=True, slots=True)
class OwnedTable:
    """Secrets in a table sjti owns (see the module docstring)."""

    name: str = "sjti_user_secrets"
    audit_table: str = "sjti_revocation_audit"
    events_table: str = "sjti_revocation_events"
    nodes_table: str = "sjti_nodes"

    def __post_init__(self) -> None:
        _check_name("the secrets table name", self.name)
        _check_log_names(self)


@dataclass(frozen=True, slots=True)
class AppUsersTable:
    """Secrets in three columns of the application's users table (see the module docstring).

    ``table`` is the app's SQLAlchemy :class:`~sqlalchemy.Table`; it must declare the
    configured columns (:func:`secret_columns` makes them).
    """

    table: Table
    id_column: str = "id"
    secret_column: str = "token_secret"  # noqa: S105 - a column name, not a password
    version_column: str = "token_version"
    rotated_at_column: str = "token_rotated_at"
    devices_column: str = "token_devices"
    audit_table: str = "sjti_revocation_audit"
    events_table: str = "sjti_revocation_events"
    nodes_table: str = "sjti_nodes"

    def __post_init__(self) -> None:
        if not isinstance(self.table, Table):
            raise ConfigurationError("AppUsersTable needs a sqlalchemy Table")
        _column(self.table, self.id_column, "the user id")
        _column(self.table, self.secret_column, "the secret")
        _column(self.table, self.version_column, "the version")
        _column(self.table, self.rotated_at_column, "rotated_at")
        _column(self.table, self.devices_column, "the devices")
        _check_log_names(self)


Layout = OwnedTable | AppUsersTable

# Cohort field -> the CohortColumns attribute that backs it.
_COHORT_FIELDS: Final = {
    "tenant": "tenant",
    "role": "role",
    "created_before": "created_at",
    "last_login_before": "last_login_at",
}


@dataclass(frozen=True, slots=True)
class CohortColumns:
    """Which columns of the app's table back each :class:`~sjti.stores.base.Cohort` field.

    ``extra`` maps names usable in ``Cohort.equals`` to column names, e.g.
    ``{"plan": "plan"}``. A cohort that uses a field or an ``equals`` key not
    configured here raises :class:`~sjti.stores.base.CohortError`.
    """

    table: Table
    id_column: str = "id"
    tenant: str | None = None
    role: str | None = None
    created_at: str | None = None
    last_login_at: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.table, Table):
            raise ConfigurationError("CohortColumns needs a sqlalchemy Table")
        _column(self.table, self.id_column, "the user id")
        for attribute in _COHORT_FIELDS.values():
            name = getattr(self, attribute)
            if name is not None:
                _column(self.table, name, attribute)
        for key, name in self.extra.items():
            _column(self.table, name, f"extra[{key!r}]")

    def column_for(self, cohort_field: str) -> Column[Any] | None:
        """The column behind a Cohort field (``tenant``, ``created_before``...), if set."""
        name = getattr(self, _COHORT_FIELDS[cohort_field])
        return self.table.c[name] if name is not None else None

    def extra_column(self, key: str) -> Column[Any] | None:
        name = self.extra.get(key)
        return self.table.c[name] if name is not None else None


def user_key_from_row(
    row: Mapping[Any, Any], kek_ring: KekRing, layout: AppUsersTable
) -> UserKey | None:
    """The user's key from a users row the app already loaded: no query at all.

    ``row`` is e.g. ``result.mappings().one()`` for a select of the users table. Returns
    ``None`` when the user has no secret yet; a secret that does not open raises
    :class:`~sjti.errors.UnwrapError` (fail closed).
    """
    text = row[layout.secret_column]
    if text is None:
        return None
    if layout.devices_column not in row:
        # Fail closed: a row read without its device list would pass signed-out devices.
        raise ConfigurationError(
            f"the users row must include {layout.devices_column!r} (select the whole row, "
            "or every column of secret_columns())"
        )
    secret = rv.open_secret(kek_ring, str(row[layout.id_column]), text)
    devices = row[layout.devices_column]
    return UserKey(secret, None if devices is None else str(devices).split())
