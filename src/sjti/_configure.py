"""One factory: :func:`configure` wires keys, store, cache, bus, issuer and verifiers from
:class:`~sjti.settings.Settings`. The reference service and the CLI are built with it too.

    auth = sjti.configure()                 # sjti.toml + SJTI_* environment
    token = auth.issue("alice")
    claims = auth.verify(token)             # both layers; refused once alice is revoked
    auth.revoke("alice", actor="admin", reason="stolen laptop")

Nothing here imports SQLAlchemy, redis-py or psycopg until the settings ask for them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from ._core.claims import Claims, ClaimsPolicy
from ._core.keyset import KeySet
from ._core.wrapping import KekRing
from ._keyfile import KeyMaterial, load_key_material
from .errors import ConfigurationError
from .settings import Settings
from .tokens import BoundaryVerifier, Clock, Issuer, UserVerifier, system_clock

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .cache import CachedKeys, KeyCache
    from .cache.pg_bus import PgNotifyBus
    from .cache.poll_bus import LogPollBus
    from .cache.redis_bus import RedisBus
    from .stores.base import RevocationResult
    from .stores.memory import MemorySecretStore
    from .stores.sql import CohortColumns, Layout, SqlSecretStore

    Bus = RedisBus | PgNotifyBus | LogPollBus

__all__ = ["Auth", "SignedIn", "configure"]

logger = logging.getLogger("sjti")

Migrate = Literal[True, False] | Callable[["Engine"], object]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A device signed in: its first access token, its id (the ``sid`` claim) and the
    devices the sign-in signed out to stay within ``max_devices``."""

    token: str
    sid: str
    signed_out: tuple[str, ...] = ()


@dataclass(eq=False)
class Auth:
    """Everything :func:`configure` wired, ready to use. Close it (or use ``with``) to stop
    the bus and release the database.

    - ``issuer`` signs access tokens; ``boundary`` checks them with the application keys
      only (not revocation-aware); ``verifier`` adds the user layer.
    - ``store`` holds the users' keys (and revokes); ``user_keys`` serves them through
      ``cache``, which ``bus`` keeps current across processes (``None``: no bus, so the
      cache is trusted only within one process, or bypassed).
    """

    settings: Settings
    material: KeyMaterial
    issuer: Issuer
    boundary: BoundaryVerifier
    verifier: UserVerifier
    store: MemorySecretStore | SqlSecretStore
    cache: KeyCache
    user_keys: CachedKeys
    bus: Bus | None = None
    engine: Engine | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def keys(self) -> KeySet:
        """The application keys (publish ``keys.to_jwks()`` for gateways)."""
        return self.material.keys

    @property
    def kek_ring(self) -> KekRing:
        return self.material.kek_ring

    def issue(self, user_id: str, *, claims: Mapping[str, Any] | None = None) -> str:
        """An access token for ``user_id``, bound to its key (made on first use)."""
        return self.issuer.issue(user_id, self.store.ensure(user_id), claims=claims)

    def sign_in(self, user_id: str, *, claims: Mapping[str, Any] | None = None) -> SignedIn:
        """A new device for ``user_id``: its access token (``sid`` bound) and device id.
        :meth:`revoke_device` with that id refuses this device's tokens at once and
        leaves the user's other devices signed in. With a bus, returns once every live
        node has applied the sign-in (at most ``revoke_wait_timeout``, 1 s at most)."""
        options: dict[str, Any] = {"max_devices": self.settings.max_devices}
        if self.bus is not None:  # a bus means SQL and other nodes: wait for them
            options.update(wait="all", timeout=min(self.settings.revoke_wait_timeout, 1.0))
        signed_in = self.store.sign_in(user_id, **options)
        bound = {**(claims or {}), "sid": signed_in.sid}
        token = self.issuer.issue(user_id, signed_in.key, claims=bound)
        return SignedIn(token, signed_in.sid, signed_in.signed_out)

    def revoke_device(self, user_id: str, sid: str, *, actor: str, reason: str) -> RevocationResult:
        """Sign one device out: its tokens are refused at once on every node; the user's
        other devices stay signed in (``count == 0``: that device was not signed in)."""
        return self.store.revoke_device(user_id, sid, actor=actor, reason=reason)

    def verify(self, token: str | bytes) -> Claims:
        """Both layers; the user's key through the cache."""
        return self.verifier.verify_with(token, self.user_keys.get)

    async def averify(self, token: str | bytes) -> Claims:
        """:meth:`verify` for asyncio code (a cache miss reads in a worker thread)."""
        return await self.verifier.averify_with(token, self.user_keys.aget)

    def revoke(self, user_id: str, *, actor: str, reason: str) -> RevocationResult:
        """Every token of ``user_id`` refused from now on, on every node (key rotation)."""
        return self.store.revoke(user_id, actor=actor, reason=reason)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait for the bus (if any) to subscribe; True when the cache can be trusted."""
        return self.bus is None or self.bus.wait_connected(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.bus is not None:
            self.bus.close()
        if self.engine is not None:
            self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def configure(
    settings: Settings | None = None,
    /,
    *,
    layout: Layout | None = None,
    cohort_columns: CohortColumns | None = None,
    migrate: Migrate = True,
    start_bus: bool = True,
    clock: Clock = system_clock,
    keys: KeySet | None = None,
    store: MemorySecretStore | None = None,
    **overrides: Any,
) -> Auth:
    """Wire sjti from ``settings`` (default: :meth:`Settings.load`, with ``overrides``).

    ``layout``: where user keys live in SQL: sjti's own table (default) or
    :class:`~sjti.stores.sql.AppUsersTable` over your users table. ``migrate``: create or
    upgrade sjti's tables first (``True``), not at all (``False``: you run ``sjti db
    upgrade``), or a function of the engine that does. ``start_bus``: start the
    invalidation bus now (``False``: call ``auth.bus.start()`` yourself, e.g. after a fork).
    ``keys`` / ``store`` (with ``database_url = memory://``): use these application keys and
    this in-memory store instead of new ones (tests share them, as ``sjti.testing`` does).
    """
    if settings is None:
        settings = Settings.load(**overrides)
    elif overrides:
        settings = settings.replace(**overrides)
    material = load_key_material(settings)
    if keys is not None:
        material = dataclasses.replace(material, keys=keys)
    if store is not None and not settings.in_memory:
        raise ConfigurationError("configure(store=...) is for database_url = memory:// only")
    policy = ClaimsPolicy(
        issuer=settings.issuer, audience=settings.audience, leeway=settings.leeway
    )
    boundary = BoundaryVerifier(material.keys, policy, clock=clock)
    issuer = Issuer(
        material.keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl=settings.access_ttl,
        clock=clock,
    )
    parts = _memory(settings, material, store) if settings.in_memory else None
    if parts is None:
        parts = _sql(settings, material, layout, cohort_columns, migrate)
    wired, cache, bus, engine = parts
    from .cache import CachedKeys

    auth = Auth(
        settings=settings,
        material=material,
        issuer=issuer,
        boundary=boundary,
        verifier=UserVerifier(boundary),
        store=wired,
        cache=cache,
        user_keys=CachedKeys(wired, cache=cache),
        bus=bus,
        engine=engine,
    )
    if bus is not None and start_bus:
        bus.start()
    return auth


_Parts = tuple["MemorySecretStore | SqlSecretStore", "KeyCache", "Bus | None", "Engine | None"]


def _memory(settings: Settings, material: KeyMaterial, given: MemorySecretStore | None) -> _Parts:
    """One process, so the store's own listener keeps a trusted cache exact."""
    from .cache import KeyCache
    from .stores.memory import MemorySecretStore

    store = given if given is not None else MemorySecretStore(material.kek_ring)
    cache = KeyCache(max_size=settings.cache_max_size, max_age=settings.cache_max_age, trusted=True)
    store.add_listener(cache.invalidate)
    return store, cache, None, None


def _sql(
    settings: Settings,
    material: KeyMaterial,
    layout: Layout | None,
    cohort_columns: CohortColumns | None,
    migrate: Migrate,
) -> _Parts:
    from ._engine import make_engine
    from .cache import DEFAULT_PG_CHANNEL, KeyCache
    from .stores.sql import SqlSecretStore, upgrade

    engine = make_engine(settings.database_url)
    try:
        if migrate is True:
            upgrade(engine, layout)
        elif migrate is not False:
            migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    # On PostgreSQL without Redis, the revocation's own transaction sends the NOTIFY.
    notify = DEFAULT_PG_CHANNEL if settings.on_postgresql and not settings.redis_url else None
    # Untrusted until a bus (or the log poll) proves it current: trust on evidence.
    cache = KeyCache(max_size=settings.cache_max_size, max_age=settings.cache_max_age)
    replica = None
    if settings.database_replica_url is not None:  # PostgreSQL only: the store checks
        from sqlalchemy import event

        replica = lone = make_engine(settings.database_replica_url)
        event.listen(engine, "engine_disposed", lambda _: lone.dispose())
    store = SqlSecretStore(
        engine,
        material.kek_ring,
        layout,
        cohort_columns=cohort_columns,
        notify_channel=notify,
        # Misses only, only while the bus keeps the cache trusted (a bypass read must be
        # current), only when it proves it holds what the cache dropped: stores/_replica.
        replica=replica,
        replica_cache=cache,
    )
    store.add_listener(cache.invalidate)  # this process refuses at once, bus or not
    bus = _bus_for(settings, cache, store)
    if bus is None:
        logger.warning(
            "no invalidation bus (SJTI_REDIS_URL, PostgreSQL, or SJTI_CACHE_WITHOUT_BUS="
            "poll): the user-key cache is bypassed"
        )
    return store, cache, bus, engine


def _bus_for(settings: Settings, cache: KeyCache, store: SqlSecretStore) -> Bus | None:
    """Redis (a Cluster's sharded pub/sub with ``redis_cluster``) if configured; else
    NOTIFY on PostgreSQL; else a log poll if the operator opted in; else none (the cache
    stays untrusted: every lookup reads the database)."""
    common: dict[str, Any] = {"log": store, "poll_interval": settings.poll_interval}
    if settings.redis_url is not None:
        from .cache.redis_bus import RedisBus
        from .cache.redis_cluster_bus import RedisClusterBus

        kind = RedisClusterBus if settings.redis_cluster else RedisBus  # sharded pub/sub
        bus: Bus = kind(cache, settings.redis_url, **common)
        store.add_event_listener(bus.relay)  # publish after commit; never fails a revocation
        return bus
    if settings.on_postgresql:
        from .cache import DEFAULT_PG_CHANNEL
        from .cache.pg_bus import PgNotifyBus

        return PgNotifyBus(cache, settings.database_url, channel=DEFAULT_PG_CHANNEL, **common)
    if settings.cache_without_bus == "poll":
        from .cache.poll_bus import LogPollBus

        return LogPollBus(cache, **common)
    return None
