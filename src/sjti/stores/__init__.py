"""User-secret stores: in-memory (tests, examples) and SQL (SQLite, PostgreSQL).

This package imports no optional dependency. The SQL stores live in their own modules,
which need the ``sql`` extra (SQLAlchemy)::

    from sjti.stores.sql import SqlSecretStore, OwnedTable, AppUsersTable, upgrade
    from sjti.stores.sql_async import AsyncSqlSecretStore, upgrade_async
"""

from .base import (
    MAX_LISTED_IDS,
    AsyncSecretStore,
    AuditRecord,
    Cohort,
    CohortError,
    ListenerError,
    RevocationListener,
    RevocationResult,
    SecretStore,
    UnknownUserError,
)
from .memory import AsyncMemorySecretStore, MemorySecretStore, MemoryUser

__all__ = [
    "MAX_LISTED_IDS",
    "AsyncMemorySecretStore",
    "AsyncSecretStore",
    "AuditRecord",
    "Cohort",
    "CohortError",
    "ListenerError",
    "MemorySecretStore",
    "MemoryUser",
    "RevocationListener",
    "RevocationResult",
    "SecretStore",
    "UnknownUserError",
]
