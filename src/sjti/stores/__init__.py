"""User-secret stores: in-memory (tests, examples) and SQL (SQLite, PostgreSQL)."""

from .base import (
    AsyncSecretStore,
    AuditRecord,
    Cohort,
    RevocationListener,
    RevocationResult,
    SecretStore,
    UnknownUserError,
)
from .memory import MemorySecretStore

__all__ = [
    "AsyncSecretStore",
    "AuditRecord",
    "Cohort",
    "MemorySecretStore",
    "RevocationListener",
    "RevocationResult",
    "SecretStore",
    "UnknownUserError",
]
