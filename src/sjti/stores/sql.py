"""The SQL secret store (SQLAlchemy Core, synchronous): SQLite embedded, PostgreSQL.

Example::

    engine = create_engine("sqlite:///sjti.db")
    upgrade(engine)                                # create/upgrade the tables, idempotent
    store = SqlSecretStore(engine, KekRing.from_config(os.environ["SJTI_KEKS"]))
    key = store.ensure("user-1")                   # first token: the secret is created
    store.revoke("user-1", actor="admin", reason="lost laptop")

Layouts (details in :mod:`sjti.stores.layouts`):

* ``OwnedTable(name="sjti_user_secrets")`` (the default): a table sjti owns with
  ``user_id`` (PK), ``wrapped_secret``, ``kek_id``, ``version``, ``rotated_at``. Cohorts by
  tenant, role, created/last-login need ``cohort_columns=CohortColumns(users, ...)``, the
  app's users table joined on the id.
* ``AppUsersTable(table=users, id_column="id", secret_column="token_secret",
  version_column="token_version", rotated_at_column="token_rotated_at")``: the blog's
  ``ALTER TABLE users ADD COLUMN token_secret``. :func:`user_key_from_row` verifies the
  user layer from the row the app already loaded, with zero extra queries.

Secrets are stored wrapped under the KEK ring (``WrappedSecret.to_str()``), never in clear.
Every method is one transaction; a revocation is committed before it returns, with an
audit row; listeners run after the commit. With ``notify_channel`` (PostgreSQL) each
revocation also sends ``pg_notify(channel, encode_invalidation(ids))`` inside its
transaction, so the message goes out exactly when (and only if) the change commits.
Database failures raise :class:`~sjti.errors.BackendError` (fail closed).

The statements and decisions are shared with :mod:`sjti.stores.sql_async`
(:mod:`sjti.stores._plans`); this class only runs them on a connection.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

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
    AuditRecord,
    Cohort,
    DeviceSignIn,
    EventListener,
    EventPage,
    NodeRecord,
    RevocationEvent,
    RevocationListener,
    RevocationResult,
    SecretStore,
)
from .layouts import (
    AppUsersTable,
    CohortColumns,
    Layout,
    OwnedTable,
    secret_columns,
    user_key_from_row,
)
from .migrations import add_secret_columns, schema_versions, upgrade

__all__ = [
    "AppUsersTable",
    "CohortColumns",
    "Layout",
    "OwnedTable",
    "SqlSecretStore",
    "add_secret_columns",
    "schema_versions",
    "secret_columns",
    "upgrade",
    "user_key_from_row",
]

T = TypeVar("T")
# ``wait="all"``: return once every live node applied the revocation's event (or timeout).
Wait = Literal["all"] | None
DEFAULT_WAIT: Final = 5.0
ACK_POLL: Final = 0.002  # seconds between looks at the node registry while waiting
BATCH: Final = MAX_LISTED_IDS  # users per batch of revoke_batches: each event lists its ids


def _execute(conn: Connection, op: plans.Op) -> plans.Rows:
    if isinstance(op, plans.Fetch):
        return conn.execute(op.statement).mappings().all()
    if isinstance(op, plans.Count):
        return ({"n": (conn.execute(op.statement)).rowcount},)
    if op.params is None:
        conn.execute(op.statement)
    else:
        conn.execute(op.statement, list(op.params))  # executemany
    return ()


class SqlSecretStore:
    """Implements :class:`sjti.stores.base.SecretStore` on a SQLAlchemy :class:`Engine`."""

    def __init__(
        self,
        engine: Engine,
        kek_ring: KekRing,
        layout: Layout | None = None,
        *,
        cohort_columns: CohortColumns | None = None,
        notify_channel: str | None = None,
        clock: Callable[[], datetime] = rv.utc_now,
        replica: Engine | None = None,
        replica_cache: replicas.GuardedCache | None = None,
    ) -> None:
        """``replica``: a streaming replica of ``engine`` (PostgreSQL) for cache misses,
        used only while ``replica_cache`` (the node's :class:`~sjti.cache.KeyCache`) is
        trusted and only when it proves it holds an event as new as every change behind
        the cache's drops of the user (see :mod:`sjti.stores._replica`); writes,
        event-log reads and anything it cannot prove go to ``engine``."""
        self._engine = engine
        self._layout = layout or OwnedTable()
        self._ctx = st.build_context(
            engine.dialect.name,
            kek_ring,
            layout or OwnedTable(),
            cohort_columns,
            notify_channel,
            clock,
        )
        self._lane = lookups.Lane(engine, lookups.compile_lookup(self._ctx, engine.dialect))
        self._replica = _replica_for(engine, replica, replica_cache, self._ctx)
        self._listeners: list[RevocationListener] = []
        self._event_listeners: list[EventListener] = []

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Give the connections held for lookups back to the engine's pool (call it before
        ``engine.dispose()``; the store still works afterwards and takes them again)."""
        self._lane.close()
        if self._replica is not None:
            self._replica.lane.close()

    @property
    def replica(self) -> replicas.Replica | None:
        """The read replica's reader (its ``guard``, ``served``/``declined`` counts)."""
        return self._replica

    @property
    def layout(self) -> Layout:
        return self._layout

    def load_secret(self, user_id: str) -> bytes | None:
        """The hot lookup: one primary-key SELECT at the driver's floor (see _lookup);
        from the replica when it proves itself current for this user."""
        return self._load(user_id, self._replica)

    def _load(self, user_id: str, replica: replicas.Replica | None) -> bytes | None:
        id_value = st.coerce_id(self._ctx.target, user_id)
        if id_value is None:
            return None
        if replica is not None:
            found = replica.read(user_id, id_value)
            if found is not None:
                return found
        return plans.open_found(self._ctx, user_id, self._lane.fetch(id_value))

    def load(self, user_id: str) -> UserKey | None:
        record = self.load_secret(user_id)
        return UserKey.from_record(record) if record is not None else None

    def ensure(self, user_id: str) -> UserKey:
        record = self._load(user_id, None)  # the primary, no write lock: a mint path
        if record is None:
            record = self._run(plans.ensure(self._ctx, user_id))
        return UserKey.from_record(record)

    def sign_in(
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
        signed_in, result = self._run(job)
        rv.announce(self._listeners, self._event_listeners, result, "sign_in")
        if wait is None or signed_in.event_id is None:
            return signed_in
        acknowledgement = self.wait_applied(signed_in.event_id, timeout=timeout)
        return dataclasses.replace(signed_in, acknowledgement=acknowledgement)

    def revoke_device(
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
        return self._revoked(job, "device", wait, timeout)

    def forget(
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
        return self._revoked(job, "deleted", wait, timeout)

    def devices(self, user_id: str) -> list[str] | None:
        """The user's signed-in devices, oldest first (``None``: devices not tracked)."""
        return self._run(plans.devices_of(self._ctx, user_id))

    def revoke(
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
        return self._revoked(job, "user", wait, timeout)

    def revoke_many(
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
        return self._revoked(job, "users", wait, timeout)

    def revoke_cohort(
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
        return self._revoked(job, "cohort", wait, timeout)

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
    ) -> Iterator[RevocationResult]:
        """Revoke a criteria cohort of any size in batches; yields each committed batch.

        For incidents too large for one transaction (a whole tenant: a million users).
        Each batch of at most ``batch_size`` users (keyset order on the id) is **one
        transaction** with its own key rotations, audit row (detail ``"<criteria> (batch
        n)"``) and event: committed before it is yielded, announced to the listeners (the
        bus relay) right after, so nodes drop each batch's users as it commits, from one
        message per batch. With ``batch_size`` at most :data:`MAX_LISTED_IDS` (the
        default) each event lists its users, so nodes drop exactly those keys.

        Not atomic across batches: a failure (BackendError) leaves the batches before it
        revoked, each with its event; run it again to finish (users already rotated are
        rotated again, which is harmless), or pass ``after``: the last committed batch's
        keyset position, which ``record`` (run in each batch's transaction after ``also``,
        given the batch's ids and that position: its largest id in the database's own
        order) can store with the batch. No clock decides where a resumed run starts.
        Memory is bounded by one batch. The iterator is lazy: consume it (``for batch in
        ...`` to show progress). The dry run is :meth:`preview_batches`.
        """
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
        )  # CohortError now, not at the first next()
        return self._batches(jobs)

    def _batches(self, jobs: plans.Batches) -> Iterator[RevocationResult]:
        for job in jobs:
            batch = self._run(job)
            jobs.advance(batch)
            if batch.result.count:
                rv.announce(self._listeners, self._event_listeners, batch.result, "cohort")
                yield batch.result

    def preview_batches(self, cohort: Cohort) -> RevocationResult:
        """The dry run of :meth:`revoke_batches`: the count and the first
        :data:`MAX_LISTED_IDS` users in batch order; reads two index ranges, locks nothing."""
        return self._run(plans.preview_batches(self._ctx, cohort))

    def audit_log(self, *, limit: int = 100) -> list[AuditRecord]:
        return self._run(plans.audit_log(self._ctx, limit))

    def add_listener(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def rewrap(self, batch_size: int = 500, *, actor: str | None = None) -> Iterator[int]:
        """Move every secret not under the ring's primary KEK to it, in batches.

        Yields the count moved per batch; each batch is one committed transaction with one
        audit row (kind ``kek_rewrap``). User keys do not change. Stopping early is safe:
        a later run picks up what is left. A secret that does not open raises
        :class:`~sjti.errors.UnwrapError` (its batch rolls back).
        """
        plans.check_batch_size(batch_size)
        return self._rewrap(batch_size, actor)

    def _rewrap(self, batch_size: int, actor: str | None) -> Iterator[int]:
        after = None
        while True:
            job = plans.rewrap_batch(self._ctx, batch_size, after=after, actor=actor)
            moved, after = self._run(job)
            if not moved:
                return
            yield moved

    def rewrap_pending(self, kek_id: str | None = None) -> int:
        """How many secrets are not under the primary KEK (``kek_id``: under that KEK)."""
        return self._run(plans.count_rewrap(self._ctx, kek_id))

    def _revoked(
        self, job: plans.Job[RevocationResult], kind: str, wait: Wait, timeout: float
    ) -> RevocationResult:
        result = self._run(job)  # committed when this returns
        rv.announce(self._listeners, self._event_listeners, result, kind)
        if wait is None or result.event_id is None:
            return result
        acknowledgement = self.wait_applied(result.event_id, timeout=timeout)
        return dataclasses.replace(result, acknowledgement=acknowledgement)

    # -- the revocation event log and the node registry ---------------------------------

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` after each committed revocation (the bus relay)."""
        self._event_listeners.append(listener)

    def events_after(self, after: int, limit: int = eventlog.PAGE) -> EventPage:
        """Up to ``limit`` events after ``after``, and the log's bounds."""
        seen = replicas.log_read(self._replica)  # a drop before this read: now an id
        page = self._run(eventlog.events_after(self._ctx, after, limit))
        seen(page.latest)
        return page

    def latest_event_id(self) -> int:
        """The newest event id (0: none yet): the cheap poll every node runs."""
        seen = replicas.log_read(self._replica)
        return seen(self._run(eventlog.latest(self._ctx)))

    def pending_events(self, older_than: float = 0.0) -> list[RevocationEvent]:
        """Events nobody has published yet, committed at least ``older_than`` s ago."""
        return self._run(eventlog.pending(self._ctx, older_than))

    def mark_published(self, event_ids: Sequence[int]) -> None:
        self._run(eventlog.mark_published(self._ctx, event_ids))

    def prune_events(self, before: datetime) -> int:
        """Delete events older than ``before`` (the newest always stays); how many."""
        return self._run(eventlog.prune(self._ctx, before))

    def heartbeat(self, node_id: str, watermark: int, info: str | None = None) -> None:
        """Record that node ``node_id`` is alive and has applied events <= ``watermark``."""
        self._run(eventlog.heartbeat(self._ctx, node_id, watermark, info))

    def live_nodes(self, within: float = NODE_TTL) -> list[NodeRecord]:
        """Nodes that heartbeat in the last ``within`` seconds."""
        return self._run(eventlog.live_nodes(self._ctx, within))

    def forget_node(self, node_id: str) -> None:
        self._run(eventlog.forget_node(self._ctx, node_id))

    def wait_applied(
        self, event_id: int, *, timeout: float = DEFAULT_WAIT, within: float = NODE_TTL
    ) -> Acknowledgement:
        """Wait until every live node's watermark reaches ``event_id``, or ``timeout``
        seconds; the answer lists the nodes that had not (``complete`` if none)."""
        deadline = time.monotonic() + timeout
        while True:
            status = rv.acknowledgement(event_id, self.live_nodes(within))
            if status.complete or time.monotonic() >= deadline:
                return status
            time.sleep(ACK_POLL)

    def _run(self, job: plans.Job[T]) -> T:
        """Drive a plan on one connection; commit write jobs, roll back everything else."""
        try:
            with self._engine.connect() as conn:
                if job.write and job.begin is not None:
                    conn.exec_driver_sql(job.begin)
                plan = job.plan
                try:
                    op = next(plan)
                    while True:
                        op = plan.send(_execute(conn, op))
                except StopIteration as stop:
                    value = cast(T, stop.value)
                if job.write:
                    conn.commit()
                return value  # leaving the block rolls back a read transaction
        except (DBAPIError, PoolTimeoutError) as exc:
            # Chain the driver's error, not SQLAlchemy's wrapper: the wrapper's message
            # lists the statement's parameters, which include wrapped secrets.
            raise BackendError("secret store unavailable") from plans.driver_error(exc)


def _replica_for(
    engine: Engine, replica: Engine | None, cache: replicas.GuardedCache | None, ctx: st.Context
) -> replicas.Replica | None:
    if replica is None:
        return None
    if cache is None:
        raise ConfigurationError("a read replica needs replica_cache=the node's KeyCache")
    return replicas.Replica(engine, replica, ctx, cache)


if TYPE_CHECKING:  # mypy proves the class keeps the protocol's shape

    def _is_store(store: SqlSecretStore) -> SecretStore:
        return store
