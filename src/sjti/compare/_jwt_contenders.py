"""The JWT contenders: ``sjti``, ``epoch``, ``denylist`` and ``plain`` on SQL stores
(SQLite or PostgreSQL; the Redis deny-list is in :mod:`sjti.compare._redis_contender`).

Each wraps a pure strategy from :mod:`sjti._core.strategies` with a small state port:
``sjti`` uses the real :class:`~sjti.stores.sql.SqlSecretStore` (keys wrapped under the
KEK), the others use the tables in :mod:`sjti.compare._db`.

Devices: every JWT design puts the device's id in the ``sid`` claim. ``sjti`` tracks
devices in its own layout (:class:`SjtiDevicesContender`: the key record lists them),
``epoch`` can only move the user's epoch, ``denylist`` denies every live jti of the
device, ``plain`` cannot sign anything out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.sql import column, table

from .._core.binding import (
    SID_CLAIM,
    USER_KEY_SIZE,
    UserKey,
    device_ids,
    devices_record,
    new_device_id,
)
from .._core.claims import Claims
from .._core.strategies import (
    DenylistStrategy,
    EpochStrategy,
    PlainStrategy,
    SjtiStrategy,
    Strategy,
    merge_stamp,
)
from .._core.wrapping import WrappedSecret, generate_user_key
from ..errors import RevokedTokenError
from ..stores.sql import SqlSecretStore, upgrade
from . import _db
from ._contender import Contender, DeviceScope
from ._world import AppSecrets, base_claims, boundary_verifier, now_ms, sign

__all__ = [
    "DenylistContender",
    "EpochContender",
    "PlainContender",
    "SjtiContender",
    "SjtiDevicesContender",
]

# The owned secrets table, as the app would name it in its own user query.
_SECRETS = table("sjti_user_secrets", column("user_id"), column("wrapped_secret"))


def _key_with_user_row(engine: Engine, keys: Any, user: str, *columns: Any) -> Any:
    """The app's users row joined with the user's key row (``keys``) in one query; refused
    when either is missing."""
    users = _db.APP_USERS
    query = (
        select(users.c.id, *columns)
        .select_from(users.outerjoin(keys, keys.c.user_id == users.c.id))
        .where(users.c.id == user)
    )
    with _db.guarded(), engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.wrapped_secret is None:
        raise RevokedTokenError()
    return row


class _JwtContender:
    """Issue and verify through a strategy; subclasses supply the state port."""

    strategy: ClassVar[Strategy[Any]]

    def __init__(self, engine: Engine, app: AppSecrets) -> None:
        self._engine = engine
        self._app = app
        self._key = app.app_key
        self._boundary = boundary_verifier(self._key)

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def backend(self) -> str:
        return _db.backend_of(self._engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def needs_state(self) -> bool:
        return self.strategy.needs_state

    def on(self, engine: Engine) -> Contender:
        return type(self)(engine, self._app)

    def peer(self) -> Contender:
        return type(self)(_db.twin_engine(self._engine), self._app)

    def close(self) -> None:
        self._engine.dispose()

    def state_size(self) -> tuple[int, str]:
        size, rows = _db.state_bytes(self._engine)
        return size, f"{rows} rows"

    def read_copy(self, scratch: Path) -> _db.Dump:
        return _db.read_copy(self._engine, scratch)

    def commands_sent(self) -> int:
        return 0

    def issue(self, users: Sequence[str]) -> list[str]:
        return self._issue(users, {})

    def _issue(self, users: Sequence[str], extra: Mapping[str, str]) -> list[str]:
        at = now_ms()
        states = self._issue_states(sorted(set(users)))
        issued = []
        for user in users:
            claims = base_claims(user, at, **extra)
            stamp = self.strategy.stamp(claims, states.get(user), now_ms=at)
            issued.append(merge_stamp(claims, stamp))
        self._record(issued)
        return [sign(claims, self._key) for claims in issued]

    def check_boundary(self, token: str) -> None:
        self._boundary.verify(token)

    def verify(self, token: str) -> str:
        claims = self._boundary.verify(token)
        state = self._fetch(self.strategy.state_key(claims)) if self.needs_state else None
        self.strategy.check(claims, state, now_ms=now_ms())
        return str(claims["sub"])

    def verify_with_user_row(self, token: str) -> str:
        claims = self._boundary.verify(token)
        state = self._fetch_with_user(claims)
        self.strategy.check(claims, state, now_ms=now_ms())
        return str(claims["sub"])

    def revoke_token(self, token: str) -> bool:
        return False

    def prepare(self) -> None:
        _db.create_tables(self._engine)

    def revoke_users(self, users: Sequence[str]) -> None:
        """Nothing to do by default (``plain``)."""

    # --- devices --------------------------------------------------------------------------

    def with_devices(self) -> Contender:
        return self

    def sign_in(self, user: str) -> str:
        """A fresh ``sid``; nothing recorded by default (the id rides in the tokens only)."""
        return new_device_id()

    def issue_on(self, user: str, device: str, count: int) -> list[str]:
        return self._issue([user] * count, {SID_CLAIM: device})

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        """Not possible by default (``plain``)."""
        return None

    # --- the state port -------------------------------------------------------------------

    def _issue_states(self, users: Sequence[str]) -> dict[str, Any]:
        """The state each user's stamp needs (nothing, by default)."""
        return {}

    def _record(self, issued: Sequence[Claims]) -> None:
        """Write what issuing must leave behind (nothing, by default)."""

    def _fetch(self, key: str) -> Any:
        return None

    def _fetch_with_user(self, claims: Claims) -> Any:
        """Default: the app's user query, then the strategy's own fetch."""
        self._load_user(str(claims["sub"]))
        return self._fetch(self.strategy.state_key(claims)) if self.needs_state else None

    def _load_user(self, user: str) -> None:
        with _db.guarded(), self._engine.connect() as conn:
            found = conn.execute(select(_db.APP_USERS.c.id).where(_db.APP_USERS.c.id == user))
            if found.first() is None:
                raise RevokedTokenError()


class SjtiContender(_JwtContender):
    """State: the user's key in :class:`SqlSecretStore`, wrapped under the KEK ring."""

    strategy = SjtiStrategy()

    def __init__(self, engine: Engine, app: AppSecrets) -> None:
        super().__init__(engine, app)
        self._ring = app.kek_ring
        self._store = SqlSecretStore(engine, self._ring)

    def prepare(self) -> None:
        super().prepare()
        upgrade(self._engine)

    def _issue_states(self, users: Sequence[str]) -> dict[str, Any]:
        return {user: self._store.ensure(user) for user in users}

    def _fetch(self, key: str) -> UserKey:
        user_key = self._store.load(key)  # BackendError when the store is gone
        if user_key is None:
            raise RevokedTokenError()
        return user_key

    def _fetch_with_user(self, claims: Claims) -> UserKey:
        """One query: the app's users row joined with the wrapped key, opened here."""
        user = str(claims["sub"])
        row = _key_with_user_row(self._engine, _SECRETS, user, _SECRETS.c.wrapped_secret)
        return UserKey(self._ring.unwrap(user, WrappedSecret.from_str(row.wrapped_secret)))

    def revoke_users(self, users: Sequence[str]) -> None:
        self._store.revoke_many(users, actor="compare", reason="scenario")

    def with_devices(self) -> Contender:
        devices = SjtiDevicesContender(self._engine, self._app)
        devices.prepare()
        return devices


class SjtiDevicesContender(_JwtContender):
    """sjti when the app tracks devices: ``cmp_sjti_key`` holds the user's wrapped key and,
    in its ``devices`` column, the rest of the key record (:func:`devices_record`), so the
    one row a verification reads (alone, or joined to the app's user row) carries both.
    Signing a device out rewrites that row without it; the secret stays."""

    strategy = SjtiStrategy()

    def __init__(self, engine: Engine, app: AppSecrets) -> None:
        super().__init__(engine, app)
        self._ring = app.kek_ring

    def prepare(self) -> None:
        _db.create_tables(self._engine, _db.SJTI_KEYS)

    def _wrapped(self, user: str, secret: bytes) -> str:
        return self._ring.wrap(user, secret).to_str()

    def _user_key(self, user: str, wrapped: str, devices: bytes | None) -> UserKey:
        """The key a row holds: the secret unwrapped, then the record's device list."""
        secret = self._ring.unwrap(user, WrappedSecret.from_str(wrapped))
        return UserKey(secret) if devices is None else UserKey.from_record(secret + devices)

    def _issue_states(self, users: Sequence[str]) -> dict[str, Any]:
        """Each user's key, created (not tracking devices) on first use."""
        keys = _db.SJTI_KEYS
        found: dict[str, Any] = {}
        with _db.guarded(), self._engine.begin() as conn:
            for part in _db.chunks(users):
                fresh = [
                    {"user_id": u, "wrapped_secret": self._wrapped(u, generate_user_key())}
                    for u in part
                ]
                conn.execute(_db.insert_ignore(self._engine, keys), fresh)
                rows = conn.execute(select(keys).where(keys.c.user_id.in_(part)))
                found |= {
                    r.user_id: self._user_key(r.user_id, r.wrapped_secret, r.devices) for r in rows
                }
        return found

    def _fetch(self, key: str) -> UserKey:
        keys = _db.SJTI_KEYS
        query = select(keys.c.wrapped_secret, keys.c.devices).where(keys.c.user_id == key)
        with _db.guarded(), self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise RevokedTokenError()
        return self._user_key(key, row.wrapped_secret, row.devices)

    def _fetch_with_user(self, claims: Claims) -> UserKey:
        """One query: the app's users row joined with the key row (secret and devices)."""
        user = str(claims["sub"])
        keys = _db.SJTI_KEYS
        row = _key_with_user_row(self._engine, keys, user, keys.c.wrapped_secret, keys.c.devices)
        return self._user_key(user, row.wrapped_secret, row.devices)

    def revoke_users(self, users: Sequence[str]) -> None:
        """A new secret each; the device lists go with the old ones."""
        keys = _db.SJTI_KEYS
        with _db.guarded(), self._engine.begin() as conn:
            for user in sorted(set(users)):
                wrapped = self._wrapped(user, generate_user_key())
                conn.execute(
                    update(keys)
                    .where(keys.c.user_id == user)
                    .values(wrapped_secret=wrapped, devices=None)
                )

    def _change_devices(self, user: str, change: Callable[[list[str]], list[str]]) -> None:
        """Rewrite the user's device list (in sign-in order) on the key row, in one
        transaction that locks the row (PostgreSQL; SQLite's writer lock serialises)."""
        self._issue_states([user])
        keys = _db.SJTI_KEYS
        query = (
            select(keys.c.wrapped_secret, keys.c.devices)
            .where(keys.c.user_id == user)
            .with_for_update()
        )
        with _db.guarded(), self._engine.begin() as conn:
            row = conn.execute(query).one()
            secret = self._user_key(user, row.wrapped_secret, None).secret_bytes()
            listed = [] if row.devices is None else device_ids(secret + row.devices)
            record = devices_record(secret, change(listed))
            conn.execute(
                update(keys).where(keys.c.user_id == user).values(devices=record[USER_KEY_SIZE:])
            )

    def sign_in(self, user: str) -> str:
        sid = new_device_id()
        self._change_devices(user, lambda listed: [*listed, sid])
        return sid

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        self._change_devices(user, lambda listed: [sid for sid in listed if sid != device])
        return "device"


class EpochContender(_JwtContender):
    """State: ``cmp_epoch(user_id, epoch_ms)``, a row once the user was revoked."""

    strategy = EpochStrategy()

    def prepare(self) -> None:
        _db.create_tables(self._engine, _db.EPOCHS)

    def _fetch(self, key: str) -> int | None:
        epochs = _db.EPOCHS
        with _db.guarded(), self._engine.connect() as conn:
            query = select(epochs.c.epoch_ms).where(epochs.c.user_id == key)
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else int(value)

    def _fetch_with_user(self, claims: Claims) -> int | None:
        """One query: the app's users row joined with the epoch."""
        users, epochs = _db.APP_USERS, _db.EPOCHS
        query = (
            select(users.c.id, epochs.c.epoch_ms)
            .select_from(users.outerjoin(epochs, epochs.c.user_id == users.c.id))
            .where(users.c.id == str(claims["sub"]))
        )
        with _db.guarded(), self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise RevokedTokenError()
        return None if row.epoch_ms is None else int(row.epoch_ms)

    def revoke_users(self, users: Sequence[str]) -> None:
        epochs = _db.EPOCHS
        with _db.guarded(), self._engine.begin() as conn:
            at = now_ms()
            for part in _db.chunks(sorted(set(users))):
                query = select(epochs.c.user_id, epochs.c.epoch_ms).where(
                    epochs.c.user_id.in_(part)
                )
                old = {row.user_id: int(row.epoch_ms) for row in conn.execute(query)}
                conn.execute(delete(epochs).where(epochs.c.user_id.in_(part)))
                rows = [
                    {"user_id": u, "epoch_ms": self.strategy.revoke(old.get(u), now_ms=at)}
                    for u in part
                ]
                conn.execute(insert(epochs), rows)

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        """One epoch per user: moving it signs every device out."""
        self.revoke_users([user])
        return "user"


class DenylistContender(_JwtContender):
    """State: denied jtis until their ``exp``, plus every live jti by user (to log out)."""

    strategy = DenylistStrategy()

    def prepare(self) -> None:
        _db.create_tables(self._engine, _db.DENYLIST, _db.LIVE_JTIS)

    def _record(self, issued: Sequence[Claims]) -> None:
        rows = [
            {
                "jti": c["jti"],
                "user_id": c["sub"],
                "expires_s": c["exp"],
                "device": c.get(SID_CLAIM),
            }
            for c in issued
        ]
        with _db.guarded(), self._engine.begin() as conn:
            conn.execute(insert(_db.LIVE_JTIS), rows)

    def _fetch(self, key: str) -> bool:
        denied = _db.DENYLIST
        with _db.guarded(), self._engine.connect() as conn:
            found = conn.execute(select(denied.c.jti).where(denied.c.jti == key)).first()
        return found is not None

    def revoke_users(self, users: Sequence[str]) -> None:
        live = _db.LIVE_JTIS
        with _db.guarded(), self._engine.begin() as conn:
            for part in _db.chunks(sorted(set(users))):
                query = select(live.c.jti, live.c.expires_s).where(live.c.user_id.in_(part))
                rows = [{"jti": r.jti, "expires_s": r.expires_s} for r in conn.execute(query)]
                if rows:
                    conn.execute(_db.insert_ignore(self._engine, _db.DENYLIST), rows)
                conn.execute(delete(live).where(live.c.user_id.in_(part)))

    def revoke_token(self, token: str) -> bool:
        claims = self._boundary.verify(token)
        jti = self.strategy.state_key(claims)
        expires = DenylistStrategy().retain_until(claims)
        with _db.guarded(), self._engine.begin() as conn:
            conn.execute(
                _db.insert_ignore(self._engine, _db.DENYLIST), [{"jti": jti, "expires_s": expires}]
            )
            conn.execute(delete(_db.LIVE_JTIS).where(_db.LIVE_JTIS.c.jti == jti))
        return True

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        """Deny every live jti the device holds (known only because each was recorded)."""
        live = _db.LIVE_JTIS
        mine = (live.c.user_id == user) & (live.c.device == device)
        with _db.guarded(), self._engine.begin() as conn:
            query = select(live.c.jti, live.c.expires_s).where(mine)
            rows = [{"jti": r.jti, "expires_s": r.expires_s} for r in conn.execute(query)]
            if rows:
                conn.execute(_db.insert_ignore(self._engine, _db.DENYLIST), rows)
            conn.execute(delete(live).where(mine))
        return "device"


class PlainContender(_JwtContender):
    """No state, no revocation: the baseline."""

    strategy = PlainStrategy()
