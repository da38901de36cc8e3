"""Everything a request needs, built once per process from :class:`Settings`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, text

from .._core.claims import ClaimsPolicy
from .._core.wrapping import KekRing, WrappedSecret
from ..cache import DEFAULT_PG_CHANNEL, CachedKeys, KeyCache
from ..cache.pg_bus import PgNotifyBus
from ..cache.poll_bus import LogPollBus
from ..cache.redis_bus import RedisBus
from ..errors import SjtiError, UnwrapError
from ..stores._revocation import open_secret
from ..stores.base import RevocationResult
from ..stores.sql import SqlSecretStore
from ..tokens import BoundaryVerifier, Issuer, UserVerifier
from .db import COHORT_COLUMNS, LAYOUT, make_engine, migrate, users
from .keyfile import KeyMaterial, load_key_material
from .metrics import Metrics
from .passwords import Passwords
from .ratelimit import FailureLimiter
from .sessions import RefreshStore
from .settings import Settings

__all__ = ["Database", "Services", "describe_unwrap_failure", "kek_self_check"]

logger = logging.getLogger("sjti.server")


Bus = RedisBus | PgNotifyBus | LogPollBus


def _bus_for(settings: Settings, cache: KeyCache, store: SqlSecretStore) -> Bus | None:
    """Redis if configured; else NOTIFY on PostgreSQL; else a log poll if the operator
    opted in; else none (the cache stays untrusted: every lookup reads the database)."""
    common: dict[str, Any] = {"log": store, "poll_interval": settings.poll_interval}
    if settings.redis_url is not None:
        bus: Bus = RedisBus(cache, settings.redis_url, **common)
        store.add_event_listener(bus.relay)  # publish after commit; never fails a revocation
        return bus
    if settings.on_postgresql:
        return PgNotifyBus(cache, settings.database_url, channel=DEFAULT_PG_CHANNEL, **common)
    if settings.cache_without_bus == "poll":
        return LogPollBus(cache, **common)
    return None


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
    material from its key file or ``SJTI_KEK``, and its secret store. What the CLI opens
    to operate the same service (``sjti users``, ``sjti revoke``...)."""

    engine: Engine
    material: KeyMaterial
    store: SqlSecretStore

    @classmethod
    def open(cls, settings: Settings) -> Database:
        material = load_key_material(settings)
        engine = make_engine(settings.database_url)
        migrate(engine)
        # On PostgreSQL without Redis, the revocation's own transaction sends the NOTIFY.
        notify = DEFAULT_PG_CHANNEL if settings.on_postgresql and not settings.redis_url else None
        store = SqlSecretStore(
            engine,
            material.kek_ring,
            LAYOUT,
            cohort_columns=COHORT_COLUMNS,
            notify_channel=notify,
        )
        return cls(engine, material, store)


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
    bus: Bus | None = None
    # Why this node cannot serve (a KEK that does not open stored keys): /readyz says it.
    problem: str | None = None
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Read the key file, migrate the database, wire the cache and its bus."""
        database = Database.open(settings)
        engine, material, store = database.engine, database.material, database.store
        problem = kek_self_check(engine, material.kek_ring)
        if problem is not None:
            logger.error("%s", problem)
        # Untrusted until a bus (or the log poll) proves it current: trust on evidence.
        cache = KeyCache(max_age=settings.cache_max_age)
        store.add_listener(cache.invalidate)  # this process refuses at once, bus or not
        bus = _bus_for(settings, cache, store)
        if bus is None:
            logger.warning(
                "no invalidation bus (SJTI_REDIS_URL, PostgreSQL, or SJTI_CACHE_WITHOUT_BUS="
                "poll): the user-key cache is bypassed"
            )
        else:
            bus.start()
        keys = CachedKeys(store, cache=cache)
        policy = ClaimsPolicy(issuer=settings.issuer, audience=settings.audience)
        issuer = Issuer(
            material.keys,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=settings.access_ttl,
        )
        verifier = UserVerifier(BoundaryVerifier(material.keys, policy))
        return cls(
            settings=settings,
            engine=engine,
            material=material,
            store=store,
            keys=keys,
            issuer=issuer,
            verifier=verifier,
            refresh=RefreshStore(
                engine, material.refresh_key, settings.refresh_ttl, material.kek_ring
            ),
            passwords=Passwords(),
            metrics=Metrics(keys.stats, bus),
            user_limiter=FailureLimiter(settings.login_max_failures, settings.login_window),
            ip_limiter=FailureLimiter(settings.login_max_failures_per_ip, settings.login_window),
            register_limiter=FailureLimiter(settings.registrations_per_ip, settings.login_window),
            bus=bus,
            problem=problem,
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
        if self._closed:
            return
        self._closed = True
        if self.bus is not None:
            self.bus.close()
        self.engine.dispose()
