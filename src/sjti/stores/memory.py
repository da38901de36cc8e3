"""In-memory secret stores (sync and async) for examples and unit tests.

Not for production: they forget everything when the process ends and are not shared
between processes. They keep the same contract as the SQL stores (wrapped secrets,
versions, audit trail, listeners after the change) so the contract suite runs on them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .._core.binding import UserKey, devices_record, new_device_id
from .._core.wrapping import Kek, KekRing, WrappedSecret
from ..errors import ConfigurationError
from . import _devices as devs
from . import _revocation as rv
from .base import (
    AsyncSecretStore,
    AuditRecord,
    Cohort,
    DeviceSignIn,
    RevocationListener,
    RevocationResult,
    SecretStore,
    UnknownUserError,
)

__all__ = ["AsyncMemorySecretStore", "MemorySecretStore", "MemoryUser"]


@dataclass(slots=True)
class MemoryUser:
    """One user's row: the wrapped key plus the attributes cohorts select on."""

    wrapped: WrappedSecret | None = None
    version: int = 0
    rotated_at: datetime | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    devices: list[str] | None = None  # signed-in devices, oldest first; None: not tracked


class MemorySecretStore:
    """Implements :class:`sjti.stores.base.SecretStore` with a dict and a lock.

    Cohort fields map to user attributes of the same name (``tenant``, ``role``,
    ``created_at``, ``last_login_at`` and any ``equals`` key), set with :meth:`add_user`.
    """

    def __init__(
        self, kek_ring: KekRing | None = None, *, clock: Callable[[], datetime] = rv.utc_now
    ) -> None:
        self._ring = kek_ring or KekRing([Kek.generate("memory")])
        self._clock = clock
        self._users: dict[str, MemoryUser] = {}
        self._audit: list[AuditRecord] = []
        self._listeners: list[RevocationListener] = []
        self._lock = threading.Lock()

    # -- app-side helpers ---------------------------------------------------------------

    def add_user(self, user_id: str, **attributes: object) -> None:
        """Register a user (without a secret yet) with attributes for cohort selection."""
        with self._lock:
            self._users.setdefault(user_id, MemoryUser()).attributes.update(attributes)

    def get_user(self, user_id: str) -> MemoryUser | None:
        """The live row (tests use it to inspect versions or to tamper with a secret)."""
        with self._lock:
            return self._users.get(user_id)

    # -- SecretStore --------------------------------------------------------------------

    def load_secret(self, user_id: str) -> bytes | None:
        """The user's key record: the secret, and the device list if devices are tracked."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None or user.wrapped is None:
                return None
            wrapped, devices = user.wrapped, user.devices
        return self._record(user_id, wrapped, devices)

    def load(self, user_id: str) -> UserKey | None:
        record = self.load_secret(user_id)
        return UserKey.from_record(record) if record is not None else None

    def ensure(self, user_id: str) -> UserKey:
        with self._lock:
            user = self._users.setdefault(user_id, MemoryUser())
            wrapped = user.wrapped or self._rotate(user_id, user, self._clock())
            devices = user.devices
        return UserKey.from_record(self._record(user_id, wrapped, devices))

    def sign_in(
        self,
        user_id: str,
        *,
        sid: str | None = None,
        max_devices: int = devs.DEFAULT_MAX_DEVICES,
    ) -> DeviceSignIn:
        """A new device for ``user_id`` (its key made on first use): issue its tokens with
        ``claims={"sid": sign_in.sid}`` and ``sign_in.key``. Past ``max_devices`` the
        oldest device is signed out (``sign_in.signed_out``)."""
        sid = sid if sid is not None else new_device_id()
        with self._lock:
            user = self._users.setdefault(user_id, MemoryUser())
            wrapped = user.wrapped or self._rotate(user_id, user, self._clock())
            change = devs.sign_in(user.devices, sid, max_devices)
            user.devices = list(change.devices)
            if change.signed_out:  # audited as the SQL stores do
                detail = devs.describe_limit(user_id, len(change.signed_out))
                self._audit_row(None, "device limit", "device", 1, detail)
        # From this sign-in's own snapshot: a rotation racing it only empties the list.
        key = UserKey(self._ring.unwrap(user_id, wrapped), change.devices)
        # The record changed: caches must read the new device list (an event, like a
        # revocation, so no node refuses the new device with a stale copy).
        result = rv.result_for([user_id], dry_run=False, audit_id=None)
        rv.announce(self._listeners, (), result, "sign_in")
        return DeviceSignIn(sid, key, change.signed_out)

    def revoke_device(
        self, user_id: str, sid: str, *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult:
        """Sign one device out: its tokens are refused at once, the user's other devices
        stay signed in. Audited; a device that is not signed in changes nothing."""
        with self._lock:
            user = self._users.get(user_id)
            change = devs.sign_out(None if user is None else user.devices, sid)
            if user is None or not change.signed_out:
                return rv.result_for([], dry_run=False, audit_id=None)
            user.devices = list(change.devices)
            record = self._audit_row(actor, reason, "device", 1, devs.describe_device(user_id, sid))
        result = rv.result_for([user_id], dry_run=False, audit_id=record.id)
        rv.announce(self._listeners, (), result, "device")
        return result

    def forget(
        self, user_ids: Iterable[str], *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult:
        """Users the application deleted: their keys are dropped and caches told (audited)."""
        with self._lock:
            ids = sorted({uid for uid in user_ids if uid in self._users})
            for uid in ids:
                del self._users[uid]
            if not ids:
                return rv.result_for([], dry_run=False, audit_id=None)
            record = self._audit_row(actor, reason, "deleted", len(ids), rv.describe_ids(len(ids)))
        result = rv.result_for(ids, dry_run=False, audit_id=record.id)
        rv.announce(self._listeners, (), result, "deleted")
        return result

    def devices(self, user_id: str) -> list[str] | None:
        """The user's signed-in devices, oldest first (``None``: devices not tracked)."""
        with self._lock:
            user = self._users.get(user_id)
            return None if user is None or user.devices is None else list(user.devices)

    def _record(self, user_id: str, wrapped: WrappedSecret, devices: list[str] | None) -> bytes:
        secret = self._ring.unwrap(user_id, wrapped)
        return secret if devices is None else devices_record(secret, devices)

    def revoke(
        self, user_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult:
        return self._revoke(
            lambda: [user_id],
            actor,
            reason,
            "user",
            rv.describe_user(user_id),
            dry_run=False,
            required=True,
        )

    def revoke_many(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        ids = set(user_ids)
        return self._revoke(
            lambda: ids, actor, reason, "users", rv.describe_ids(len(ids)), dry_run=dry_run
        )

    def revoke_cohort(
        self,
        cohort: Cohort,
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        rv.check_cohort(cohort)

        def select() -> list[str]:
            return [uid for uid, user in self._users.items() if _selects(cohort, uid, user)]

        return self._revoke(
            select, actor, reason, "cohort", rv.describe_cohort(cohort), dry_run=dry_run
        )

    def audit_log(self, *, limit: int = 100) -> list[AuditRecord]:
        with self._lock:
            return list(reversed(self._audit))[:limit]

    def add_listener(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def rewrap(self, batch_size: int = 500, *, actor: str | None = None) -> Iterator[int]:
        """Move secrets not under the primary KEK to it, ``batch_size`` at a time (in id
        order), one audit row (kind ``kek_rewrap``) per batch; yields the count per batch.
        A secret that does not open raises UnwrapError and its batch changes nothing."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError("batch_size must be a positive integer")
        return self._rewrap(batch_size, actor)

    def rewrap_pending(self, kek_id: str | None = None) -> int:
        """How many secrets are not under the primary KEK (``kek_id``: under that KEK)."""
        with self._lock:
            return sum(
                1
                for user in self._users.values()
                if user.wrapped is not None
                and (
                    self._ring.needs_rewrap(user.wrapped)
                    if kek_id is None
                    else user.wrapped.kek_id == kek_id
                )
            )

    # -- internals: KEK rotation -------------------------------------------------------

    def _rewrap(self, batch_size: int, actor: str | None) -> Iterator[int]:
        while moved := self._rewrap_batch(batch_size, actor):
            yield moved

    def _rewrap_batch(self, batch_size: int, actor: str | None) -> int:
        with self._lock:
            pending = sorted(
                (uid, user.wrapped)
                for uid, user in self._users.items()
                if user.wrapped is not None and self._ring.needs_rewrap(user.wrapped)
            )[:batch_size]
            # All or nothing, like one SQL transaction: rewrap every one, then store them.
            moved = {uid: self._ring.rewrap(uid, wrapped) for uid, wrapped in pending}
            if not moved:
                return 0
            for uid, wrapped in moved.items():
                self._users[uid].wrapped = wrapped
            self._audit.append(
                AuditRecord(
                    id=len(self._audit) + 1,
                    at=self._clock(),
                    actor=actor,
                    reason=None,
                    kind="kek_rewrap",
                    count=len(moved),
                    detail=f"to kek {self._ring.primary.kid}",
                )
            )
            return len(moved)

    # -- internals: revocation ---------------------------------------------------------

    def _rotate(self, user_id: str, user: MemoryUser, now: datetime) -> WrappedSecret:
        user.wrapped = rv.new_wrapped(self._ring, user_id)
        user.version += 1
        user.rotated_at = now
        if user.devices is not None:
            user.devices = []  # a new key signs every device out
        return user.wrapped

    def _revoke(
        self,
        select: Callable[[], Iterable[str]],
        actor: str | None,
        reason: str | None,
        kind: str,
        detail: str,
        *,
        dry_run: bool,
        required: bool = False,
    ) -> RevocationResult:
        with self._lock:
            known = [uid for uid in select() if self._has_secret(uid)]
            if required and not known:
                raise UnknownUserError()
            if dry_run:
                return rv.result_for(known, dry_run=True, audit_id=None)
            now = self._clock()
            for uid in known:
                self._rotate(uid, self._users[uid], now)
            record = self._audit_row(actor, reason, kind, len(known), detail, now)
        result = rv.result_for(known, dry_run=False, audit_id=record.id)
        rv.announce(self._listeners, (), result, kind)  # one process: no event log
        return result

    def _audit_row(
        self,
        actor: str | None,
        reason: str | None,
        kind: str,
        count: int,
        detail: str,
        now: datetime | None = None,
    ) -> AuditRecord:
        record = AuditRecord(
            id=len(self._audit) + 1,
            at=now or self._clock(),
            actor=actor,
            reason=reason,
            kind=kind,
            count=count,
            detail=detail,
        )
        self._audit.append(record)
        return record

    def _has_secret(self, user_id: str) -> bool:
        user = self._users.get(user_id)
        return user is not None and user.wrapped is not None


class SyncStoreAsAsync:
    """Any synchronous store behind the async interface. Each call runs inline: right for
    stores without I/O (memory); an I/O-bound store wants its own async implementation."""

    def __init__(self, store: SecretStore) -> None:
        self.sync = store

    async def load(self, user_id: str) -> UserKey | None:
        return self.sync.load(user_id)

    async def load_secret(self, user_id: str) -> bytes | None:
        return self.sync.load_secret(user_id)

    async def ensure(self, user_id: str) -> UserKey:
        return self.sync.ensure(user_id)

    async def revoke(
        self, user_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> RevocationResult:
        return self.sync.revoke(user_id, actor=actor, reason=reason)

    async def revoke_many(
        self,
        user_ids: Iterable[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        return self.sync.revoke_many(user_ids, actor=actor, reason=reason, dry_run=dry_run)

    async def revoke_cohort(
        self,
        cohort: Cohort,
        *,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RevocationResult:
        return self.sync.revoke_cohort(cohort, actor=actor, reason=reason, dry_run=dry_run)

    async def audit_log(self, *, limit: int = 100) -> list[AuditRecord]:
        return self.sync.audit_log(limit=limit)

    async def sign_in(self, user_id: str, **options: Any) -> DeviceSignIn:
        """The wrapped store's ``sign_in`` (per-device revocation), if it has one."""
        return cast(DeviceSignIn, self._devices().sign_in(user_id, **options))

    async def revoke_device(self, user_id: str, sid: str, **options: Any) -> RevocationResult:
        return cast(RevocationResult, self._devices().revoke_device(user_id, sid, **options))

    async def devices(self, user_id: str) -> list[str] | None:
        return cast("list[str] | None", self._devices().devices(user_id))

    async def forget(self, user_ids: Iterable[str], **options: Any) -> RevocationResult:
        return cast(RevocationResult, self._devices().forget(user_ids, **options))

    def _devices(self) -> Any:
        if not hasattr(self.sync, "sign_in"):
            raise ConfigurationError(f"{type(self.sync).__name__} does not track devices")
        return self.sync

    def add_listener(self, listener: RevocationListener) -> None:
        self.sync.add_listener(listener)

    def rewrap(self, batch_size: int = 500, *, actor: str | None = None) -> AsyncIterator[int]:
        return _as_async(self.sync.rewrap(batch_size, actor=actor))  # checks arguments now


async def _as_async(batches: Iterator[int]) -> AsyncIterator[int]:
    for moved in batches:
        yield moved


class AsyncMemorySecretStore(SyncStoreAsAsync):
    """:class:`MemorySecretStore` behind the async interface (no I/O, so no awaiting).

    ``sync`` is the wrapped store, for :meth:`MemorySecretStore.add_user` and inspection.
    """

    sync: MemorySecretStore

    def __init__(
        self, kek_ring: KekRing | None = None, *, clock: Callable[[], datetime] = rv.utc_now
    ) -> None:
        super().__init__(MemorySecretStore(kek_ring, clock=clock))


def _selects(cohort: Cohort, user_id: str, user: MemoryUser) -> bool:
    if user.wrapped is None:
        return False
    attrs: Mapping[str, object] = user.attributes
    checks: list[bool] = []
    if cohort.user_ids is not None:
        checks.append(user_id in cohort.user_ids)
    if cohort.tenant is not None:
        checks.append(attrs.get("tenant") == cohort.tenant)
    if cohort.role is not None:
        checks.append(attrs.get("role") == cohort.role)
    if cohort.created_before is not None:
        checks.append(_before(attrs.get("created_at"), cohort.created_before))
    if cohort.last_login_before is not None:
        checks.append(_before(attrs.get("last_login_at"), cohort.last_login_before))
    if cohort.rotated_before is not None:
        checks.append(_before(user.rotated_at, cohort.rotated_before))
    checks.extend(attrs.get(name) == value for name, value in cohort.equals.items())
    return all(checks)


def _before(value: object, limit: datetime) -> bool:
    return isinstance(value, datetime) and value < limit


if TYPE_CHECKING:  # mypy proves both classes keep the protocols' shapes

    def _is_store(store: MemorySecretStore) -> SecretStore:
        return store

    def _is_async_store(store: AsyncMemorySecretStore) -> AsyncSecretStore:
        return store
