"""The SQL secret store for asyncio: ``sqlite+aiosqlite`` and ``postgresql+psycopg``.

Same layouts, transactions, audit, NOTIFY and errors as :mod:`sjti.stores.sql`, from the
same statements and plans (:mod:`sjti.stores._plans`); only the driving is async::

    engine = create_async_engine("postgresql+psycopg://app@db/app")
    await upgrade_async(engine)
    store = AsyncSqlSecretStore(engine, ring, notify_channel="sjti_revocations")
    key = await store.ensure("user-1")
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._core.binding import UserKey, new_device_id
from .._core.wrapping import KekRing
from ..errors import BackendError, ConfigurationError
from . import _eventlog as eventlog
from . import _lookup as lookups
from . import _plans as plans
from . import _replica as replicas
from . import _revocation as rv
from . import _statements as st
from ._devices import DEFAULT_MAX_DEVICES
from .base import (
    MAX_LISTED_IDS,
    NODE_TTL,
    Acknowledgement,
    AsyncSecretStore,
    AuditRecord,
    Cohort,
    DeviceSignIn,
    EventListener,
    EventPage,
    NodeRecord,
    RevocationEvent,
    RevocationListener,
    RevocationResult,
)
from .layouts import CohortColumns, Layout, OwnedTable
from .migrations import add_secret_columns_async, upgrade_async

__all__ = ["AsyncSqlSecretStore", "add_secret_columns_async", "upgrade_async"]

T = TypeVar("T")
# ``wait="all"``: return once every live node applied the revocation's event (or timeout).
Wait = Literal["all"] | None
DEFAULT_WAIT: Final = 5.0
ACK_POLL: Final = 0.002  # seconds between looks at the node registry while waiting
BATCH: Final = MAX_LISTED_IDS  # users per batch of revoke_batches: each event lists its ids


async def _execute(conn: AsyncConnection, op: plans.Op) -> plans.Rows:
    if isinstance(op, plans.Fetch):
        return (await conn.execute(op.statement)).mappings().all()
    if isinstance(op, plans.Count):
        return ({"n": (await conn.execute(op.statement)).rowcount},)
    if op.params is None:
        await conn.execute(op.statement)
    else:
        await conn.execute(op.statement, list(op.params))  # executemany
    return ()


class AsyncSqlSecretStore:
    """Implements :class:`sjti.stores.base.AsyncSecretStore` on an :class:`AsyncEngine`.

    Listeners are called synchronously after the commit: keep them quick (e.g. hand the
    ids to a queue).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        kek_ring: KekRing,
        layout: Layout | None = None,
        *,
        cohort_columns: CohortColumns | None = None,
        notify_channel: str | None = None,
        clock: Callable[[], datetime] = rv.utc_now,
        replica: AsyncEngine | None = None,
        replica_cache: replicas.GuardedCache | None = None,
    ) -> None:
        """``replica`` / ``replica_cache``: as :class:`sjti.stores.sql.SqlSecretStore`."""
        self._engine = engine
        self._ctx = st.build_context(
            engine.dialect.name,
            kek_ring,
            layout or OwnedTable(),
            cohort_columns,
            notify_channel,
            clock,
        )
        self._lookup = lookups.compile_lookup(self._ctx, engine.dialect)
        self._replica: replicas.AsyncReplica | None = None
        if replica is not None:
            if replica_cache is None:
                raise ConfigurationError("a read replica needs replica_cache=the node's KeyCache")
            self._replica = replicas.AsyncReplica(engine, replica, self._ctx, replica_cache)
        self._listeners: list[RevocationListener] = []
        self._event_listeners: list[EventListener] = []

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def replica(self) -> replicas.AsyncReplica | None:
        """The read replica's reader (its ``guard``, ``served``/``declined`` counts)."""
        return self._replica

    async def load_secret(self, user_id: str) -> bytes | None:
        """The hot lookup: the compiled primary-key SELECT on the DBAPI connection, one
        round trip (see _lookup), on a pooled connection per call; from the replica when
        it proves itself current for this user."""
        return await self._load(user_id, self._replica)

    async def _load(self, user_id: str, replica: replicas.AsyncReplica | None) -> bytes | None:
        id_value = st.coerce_id(self._ctx.target, user_id)
        if id_value is None:
            return None
        if replica is not None:
            found = await replica.read(user_id, id_value)
            if found is not None:
                return found
        try:
            async with self._engine.connect() as conn:
                try:
                    row = await conn.run_sync(lookups.fetch_on, self._lookup, id_value)
                except Exception as exc:  # a driver failure: drop the connection, fail closed
                    await conn.invalidate()
                    raise BackendError("secret store unavailable") from lookups.cause(exc)
        except (DBAPIError, PoolTimeoutError) as exc:
            raise BackendError("secret store unavailable") from plans.driver_error(exc)
        return plans.open_found(self._ctx, user_id, row)

    async def load(self, user_id: str) -> UserKey | None:
        record = await self.load_secret(user_id)
        return UserKey.from_record(record) if record is not None else None

    async def ensure(self, user_id: str) -> UserKey:
        record = await self._load(user_id, None)  # the primary, no write lock: a mint path
        if record is None:
            record = await self._run(plans.ensure(self._ctx, user_id))
        return UserKey.from_record(record)

    async def sign_in(
        self,
        user_id: str,
        *,
        sid: str | None = None,
        max_devices: int = DEFAULT_MAX_DEVICES,
        also: plans.AlsoSignIn | None = None,
        wait: Wait = None,
        timeout: float = DEFAULT_WAIT,
    ) -> DeviceSignIn:
        """A new device for ``user_id`` (its key made on first use): issue its tokens with
        ``claims={"sid": signed_in.sid}`` and ``signed_in.key``. Past ``max_devices`` the
        oldest device is signed out (``signed_in.signed_out``, audited). The sign-in is an
        event (caches must learn the new device); ``wait="all"``: return once every live
        node applied it, so no node refuses the device's first token."""
        job = plans.sign_in(self._ctx, user_id, sid or new_device_id(), max_devices, also)
        signed_in, result = await self._run(job)
        rv.announce(self._listeners, self._event_listeners, result, "sign_in")
        if wait is None or signed_in.event_id is None:
            return signed_in
        acknowledgement = await self.wait_applied(signed_in.event_id, timeout=timeout)
        return dataclasses.replace(signed_in, acknowledgement=acknowledgement)

    async def revoke_device(
        self,
        user_id: str,
        sid: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        also: plans.AlsoRevoke | None = None,
        wait: Wait = None,
        timeout: float = DEFAULT_WAIT,
    ) -> RevocationResult:
        """Sign one device out: its tokens are refused at once on every node, the user's
        other devices stay signed in. One transaction with ``also``, audited, an event; a
        device that is not signed in changes nothing (``count == 0``)."""
        job = plans.revoke_device(self._ctx, user_id, sid, actor=actor, reason=reason, also=also)
        return await self._revoked(job, "device", wait, timeout)

    async def forget(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        wait: Wait = None,
        timeout: float = DEFAULT_WAIT,
    ) -> RevocationResult:
        """Users the application deleted: every node drops them from its cache now (an
        event, audited), instead of serving their cached key until the entry ages out.
        Call it after the delete committed."""
        job = plans.forget(self._ctx, list(user_ids), actor=actor, reason=reason)
        return await self._revoked(job, "deleted", wait, timeout)

    async def devices(self, user_id: str) -> list[str] | None:
        """The user's signed-in devices, oldest first (``None``: devices not tracked)."""
        return await self._run(plans.devices_of(self._ctx, user_id))

    async def revoke(
        self,
        user_id: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        also: plans.AlsoRevoke | None = None,
        wait: Wait = None,
        timeout: float = DEFAULT_WAIT,
    ) -> RevocationResult:
        job = plans.revoke_user(self._ctx, user_id, actor=actor, reason=reason, also=also)
        return await self._revoked(job, "user", wait, timeout)

    async def revoke_many(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        also: plans.AlsoRevoke | None = None,
        wait: Wait = None,
        timeout: float = DEFAULT_WAIT,
    ) -> RevocationResult:
        job = plans.revoke_many(
            self._ctx, user_ids, actor=actor, reason=reason, dry_run=dry_run, also=also
        )
        return await self._revoked(job, "users", wait, timeout)

    async def revoke_cohort(
        self,
        cohort: Cohort,
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        also: plans.AlsoRevoke | None = None,
        wait: Wait = None,
        timeout: float = DEFAULT_WAIT,
    ) -> RevocationResult:
        job = plans.revoke_cohort(
            self._ctx, cohort, actor=actor, reason=reason, dry_run=dry_run, also=also
        )
        return await self._revoked(job, "cohort", wait, timeout)

    def revoke_batches(
        self,
        cohort: Cohort,
        *,
        batch_size: int = BATCH,
        actor: str | None = None,
        reason: str | None = None,
        also: plans.AlsoRevoke | None = None,
        record: plans.RecordBatch | None = None,
        after: Any = None,
    ) -> AsyncIterator[RevocationResult]:
        """As :meth:`sjti.stores.sql.SqlSecretStore.revoke_batches`: ``async for``."""
        plans.check_batch_size(batch_size)
        jobs = plans.Batches(
            self._ctx,
            cohort,
            batch_size=batch_size,
            actor=actor,
            reason=reason,
            also=also,
            record=record,
            after=after,
        )
        return self._batches(jobs)

    async def _batches(self, jobs: plans.Batches) -> AsyncIterator[RevocationResult]:
        for job in jobs:
            batch = await self._run(job)
            jobs.advance(batch)
            if batch.result.count:
                rv.announce(self._listeners, self._event_listeners, batch.result, "cohort")
                yield batch.result

    async def preview_batches(self, cohort: Cohort) -> RevocationResult:
        """As :meth:`sjti.stores.sql.SqlSecretStore.preview_batches`."""
        return await self._run(plans.preview_batches(self._ctx, cohort))

    async def audit_log(self, *, limit: int = 100) -> list[AuditRecord]:
        return await self._run(plans.audit_log(self._ctx, limit))

    def add_listener(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def rewrap(self, batch_size: int = 500, *, actor: str | None = None) -> AsyncIterator[int]:
        """As :meth:`sjti.stores.sql.SqlSecretStore.rewrap`: ``async for moved in ...``."""
        plans.check_batch_size(batch_size)
        return self._rewrap(batch_size, actor)

    async def _rewrap(self, batch_size: int, actor: str | None) -> AsyncIterator[int]:
        after = None
        while True:
            job = plans.rewrap_batch(self._ctx, batch_size, after=after, actor=actor)
            moved, after = await self._run(job)
            if not moved:
                return
            yield moved

    async def rewrap_pending(self, kek_id: str | None = None) -> int:
        """How many secrets are not under the primary KEK (``kek_id``: under that KEK)."""
        return await self._run(plans.count_rewrap(self._ctx, kek_id))

    async def _revoked(
        self, job: plans.Job[RevocationResult], kind: str, wait: Wait, timeout: float
    ) -> RevocationResult:
        result = await self._run(job)  # committed when this returns
        rv.announce(self._listeners, self._event_listeners, result, kind)
        if wait is None or result.event_id is None:
            return result
        acknowledgement = await self.wait_applied(result.event_id, timeout=timeout)
        return dataclasses.replace(result, acknowledgement=acknowledgement)

    # -- the revocation event log and the node registry ---------------------------------

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` after each committed revocation (the bus relay)."""
        self._event_listeners.append(listener)

    async def events_after(self, after: int, limit: int = eventlog.PAGE) -> EventPage:
        """Up to ``limit`` events after ``after``, and the log's bounds."""
        seen = replicas.log_read(self._replica)  # a drop before this read: now an id
        page = await self._run(eventlog.events_after(self._ctx, after, limit))
        seen(page.latest)
        return page

    async def latest_event_id(self) -> int:
        """The newest event id (0: none yet): the cheap poll every node runs."""
        seen = replicas.log_read(self._replica)
        return seen(await self._run(eventlog.latest(self._ctx)))

    async def pending_events(self, older_than: float = 0.0) -> list[RevocationEvent]:
        """Events nobody has published yet, committed at least ``older_than`` s ago."""
        return await self._run(eventlog.pending(self._ctx, older_than))

    async def mark_published(self, event_ids: Sequence[int]) -> None:
        await self._run(eventlog.mark_published(self._ctx, event_ids))

    async def prune_events(self, before: datetime) -> int:
        """Delete events older than ``before`` (the newest always stays); how many."""
        return await self._run(eventlog.prune(self._ctx, before))

    async def heartbeat(self, node_id: str, watermark: int, info: str | None = None) -> None:
        """Record that node ``node_id`` is alive and has applied events <= ``watermark``."""
        await self._run(eventlog.heartbeat(self._ctx, node_id, watermark, info))

    async def live_nodes(self, within: float = NODE_TTL) -> list[NodeRecord]:
        """Nodes that heartbeat in the last ``within`` seconds."""
        return await self._run(eventlog.live_nodes(self._ctx, within))

    async def forget_node(self, node_id: str) -> None:
        await self._run(eventlog.forget_node(self._ctx, node_id))

    async def wait_applied(
        self, event_id: int, *, timeout: float = DEFAULT_WAIT, within: float = NODE_TTL
    ) -> Acknowledgement:
        """Wait until every live node's watermark reaches ``event_id``, or ``timeout``
        seconds; the answer lists the nodes that had not (``complete`` if none)."""
        deadline = time.monotonic() + timeout
        while True:
            status = rv.acknowledgement(event_id, await self.live_nodes(within))
            if status.complete or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(ACK_POLL)

    async def _run(self, job: plans.Job[T]) -> T:
        """Drive a plan on one connection; commit write jobs, roll back everything else."""
        try:
            async with self._engine.connect() as conn:
                if job.write and job.begin is not None:
                    await conn.exec_driver_sql(job.begin)
                plan = job.plan
                try:
                    op = next(plan)
                    while True:
                        op = plan.send(await _execute(conn, op))
                except StopIteration as stop:
                    value = cast(T, stop.value)
                if job.write:
                    await conn.commit()
                return value  # leaving the block rolls back a read transaction
        except (DBAPIError, PoolTimeoutError) as exc:
            # Chain the driver's error, not SQLAlchemy's wrapper: the wrapper's message
            # lists the statement's parameters, which include wrapped secrets.
            raise BackendError("secret store unavailable") from plans.driver_error(exc)


if TYPE_CHECKING:  # mypy proves the class keeps the protocol's shape

    def _is_store(store: AsyncSqlSecretStore) -> AsyncSecretStore:
        return store
