"""Everything a request needs, built once per process from :class:`Settings`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine, select, text

from .._configure import Auth, configure
from .._core.wrapping import KekRing, WrappedSecret
from .._keyfile import KeyMaterial
from ..cache import CachedKeys
from ..cache.pg_bus import PgNotifyBus
from ..cache.poll_bus import LogPollBus
from ..cache.redis_bus import RedisBus
from ..errors import ConfigurationError, SjtiError, UnwrapError
from ..stores._revocation import open_secret
from ..stores.base import RevocationResult
from ..stores.sql import SqlSecretStore
from ..tokens import Issuer, UserVerifier
from .db import COHORT_COLUMNS, LAYOUT, migrate, users
from .metrics import Metrics
from .passwords import Passwords
from .ratelimit import FailureLimiter
from .sessions import RefreshStore
from .settings import Settings
from .users import UserRows

__all__ = ["Database", "Services", "describe_unwrap_failure", "kek_self_check"]

logger = logging.getLogger("sjti.server")


Bus = RedisBus | PgNotifyBus | LogPollBus


def describe_unwrap_failure(wrapped_text: str, ring: KekRing) -> str:
    """An operator's message: which KEK the stored key names, which the ring holds. Ids
    only, never key material."""
    try:
        kek_id = WrappedSecret.from_str(wrapped_text).kek_id
    except (SjtiError, ValueError):
        kek_id = "?"
    held = ", ".join(k.kid for k in ring.keks)
    return (
        f"a stored user key wrapped under KEK {kek_id!r} does not open with the configured "
        f"KEK ring ({held}): restore that KEK in SJTI_KEK (or the key file)"
    )


def kek_self_check(engine: Engine, ring: KekRing) -> str | None:
    """At start: does the ring open the most recently rotated stored key? The problem, if not."""
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.token_secret)
            .where(users.c.token_secret.is_not(None))
            .order_by(users.c.token_rotated_at.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    try:
        open_secret(ring, str(row.id), row.token_secret)
    except UnwrapError:
        return describe_unwrap_failure(row.token_secret, ring)
    return None


@dataclass(frozen=True, eq=False)
class Database:
    """The service's database as the service itself sees it: engine (migrated), the key
    material from its key file or ``SJTI_KEK``, and its secret store, wired by
    :func:`sjti.configure` like any app. What the CLI opens to operate the same service
    (``sjti users``, ``sjti revoke``...): no bus is started."""

    engine: Engine
    material: KeyMaterial
    store: SqlSecretStore
    auth: Auth

    @classmethod
    def open(cls, settings: Settings, *, start_bus: bool = False) -> Database:
        if settings.in_memory:
            raise ConfigurationError(
                "the reference service keeps its users in SQL: SJTI_DATABASE_URL must be "
                "sqlite:///... or postgresql+psycopg://..., not memory://"
            )
        auth = configure(
            settings,
            layout=LAYOUT,
            cohort_columns=COHORT_COLUMNS,
            migrate=migrate,
            start_bus=start_bus,
        )
        store, engine = auth.store, auth.engine
        assert isinstance(store, SqlSecretStore)  # noqa: S101 - a SQL URL makes a SQL store
        assert engine is not None  # noqa: S101
        return cls(engine, auth.material, store, auth)

    def close(self) -> None:
        self.auth.close()


@dataclass(eq=False)
class Services:
    """The per-process wiring: engine, store, cache (+ bus), issuer, verifier, limiters."""

    settings: Settings
    engine: Engine
    material: KeyMaterial
    store: SqlSecretStore
    keys: CachedKeys
    issuer: Issuer
    verifier: UserVerifier
    refresh: RefreshStore
    passwords: Passwords
    metrics: Metrics
    user_limiter: FailureLimiter
    ip_limiter: FailureLimiter
    register_limiter: FailureLimiter
    user_rows: UserRows  # the row every bearer request loads (see auth.verify_access_token)
    database: Database = field(repr=False)
    bus: Bus | None = None
    # Why this node cannot serve (a KEK that does not open stored keys): /readyz says it.
    problem: str | None = None

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Read the key file, migrate the database, wire the cache and its bus."""
        database = Database.open(settings, start_bus=True)
        auth, engine, material = database.auth, database.engine, database.material
        problem = kek_self_check(engine, material.kek_ring)
        if problem is not None:
            logger.error("%s", problem)
        return cls(
            settings=settings,
            engine=engine,
            material=material,
            store=database.store,
            keys=auth.user_keys,
            issuer=auth.issuer,
            verifier=auth.verifier,
            refresh=RefreshStore(
                engine, material.refresh_key, settings.refresh_ttl, material.kek_ring
            ),
            passwords=Passwords(),
            metrics=Metrics(auth.user_keys.stats, auth.bus),
            user_limiter=FailureLimiter(settings.login_max_failures, settings.login_window),
            ip_limiter=FailureLimiter(settings.login_max_failures_per_ip, settings.login_window),
            register_limiter=FailureLimiter(settings.registrations_per_ip, settings.login_window),
            user_rows=UserRows(engine, material.kek_ring),
            bus=auth.bus,
            problem=problem,
            database=database,
        )

    def note_unwrap_failure(self, wrapped_text: str) -> None:
        """A request met a stored key the ring cannot open: log which KEK, mark unready."""
        problem = describe_unwrap_failure(wrapped_text, self.material.kek_ring)
        if problem != self.problem:
            logger.error("%s", problem)
        self.problem = problem

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait for the bus (if any) to subscribe; True when ready."""
        return self.bus is None or self.bus.wait_connected(timeout)

    def bus_state(self) -> str:
        return self.keys.stats().bus_state

    def database_ok(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # readiness: any failure means "not ready"
            return False
        return True

    def revoked(self, result: RevocationResult, kind: str) -> None:
        """Count a committed revocation."""
        if not result.dry_run:
            self.metrics.revocations.labels(kind).inc()
            self.metrics.revoked_users.inc(result.count)

    def close(self) -> None:
        """Stop the bus and release the database (idempotent)."""
        self.user_rows.close()
        self.database.close()
