"""Everything a request needs, built once per process from :class:`Settings`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from .._core.claims import ClaimsPolicy
from ..cache import CachedKeys, KeyCache
from ..cache.redis_bus import RedisBus
from ..stores.base import RevocationResult
from ..stores.sql import SqlSecretStore
from ..tokens import BoundaryVerifier, Issuer, UserVerifier
from .db import COHORT_COLUMNS, LAYOUT, make_engine, migrate
from .keyfile import KeyMaterial, load_key_material
from .metrics import Metrics
from .passwords import Passwords
from .ratelimit import FailureLimiter
from .sessions import RefreshStore
from .settings import Settings

__all__ = ["Services"]

logger = logging.getLogger("sjti.server")


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
    bus: RedisBus | None = None  # when SJTI_REDIS_URL is set
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Read the key file, migrate the database, wire the cache and its bus."""
        material = load_key_material(settings)
        engine = make_engine(settings.database_url)
        migrate(engine)
        store = SqlSecretStore(engine, material.kek_ring, LAYOUT, cohort_columns=COHORT_COLUMNS)
        # One process without a bus: the store's own listener keeps the cache exact, so it
        # is trusted. Several workers without Redis: nobody would tell this worker about
        # another's revocation, so the cache stays untrusted (every lookup reads through).
        cache = KeyCache(max_age=settings.cache_max_age, trusted=settings.shared_cache_safe)
        bus: RedisBus | None = None
        if settings.redis_url is not None:
            bus = RedisBus(cache, settings.redis_url).start()
            store.add_listener(bus.publish)
        else:
            store.add_listener(cache.invalidate)
            if not settings.shared_cache_safe:
                logger.warning("several workers and no SJTI_REDIS_URL: user-key cache disabled")
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
            refresh=RefreshStore(engine, material.refresh_key, settings.refresh_ttl),
            passwords=Passwords(),
            metrics=Metrics(keys.stats),
            user_limiter=FailureLimiter(settings.login_max_failures, settings.login_window),
            ip_limiter=FailureLimiter(settings.login_max_failures_per_ip, settings.login_window),
            bus=bus,
        )

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
