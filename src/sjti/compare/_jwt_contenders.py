"""The JWT contenders: ``sjti``, ``epoch``, ``denylist`` and ``plain`` on SQL stores
(SQLite or PostgreSQL; the Redis deny-list is in :mod:`sjti.compare._redis_contender`).

Each wraps a pure strategy from :mod:`sjti._core.strategies` with a small state port:
``sjti`` uses the real :class:`~sjti.stores.sql.SqlSecretStore` (keys wrapped under the
KEK), the others use the tables in :mod:`sjti.compare._db`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.sql import column, table

from .._core.binding import UserKey
from .._core.claims import Claims
from .._core.strategies import (
    DenylistStrategy,
    EpochStrategy,
    PlainStrategy,
    SjtiStrategy,
    Strategy,
    merge_stamp,
)
from .._core.wrapping import WrappedSecret
from ..errors import RevokedTokenError
from ..stores.sql import SqlSecretStore, upgrade
from . import _db
from ._contender import Contender
from ._world import AppSecrets, base_claims, boundary_verifier, now_ms, sign

__all__ = ["DenylistContender", "EpochContender", "PlainContender", "SjtiContender"]

# The owned secrets table, as the app would name it in its own user query.
_SECRETS = table("sjti_user_secrets", column("user_id"), column("wrapped_secret"))


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
        at = now_ms()
        states = self._issue_states(sorted(set(users)))
        issued = []
        for user in users:
            claims = base_claims(user, at)
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
        users = _db.APP_USERS
        query = (
            select(users.c.id, _SECRETS.c.wrapped_secret)
            .select_from(users.outerjoin(_SECRETS, _SECRETS.c.user_id == users.c.id))
            .where(users.c.id == user)
        )
        with _db.guarded(), self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.wrapped_secret is None:
            raise RevokedTokenError()
        return UserKey(self._ring.unwrap(user, WrappedSecret.from_str(row.wrapped_secret)))

    def revoke_users(self, users: Sequence[str]) -> None:
        self._store.revoke_many(users, actor="compare", reason="scenario")


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


class DenylistContender(_JwtContender):
    """State: denied jtis until their ``exp``, plus every live jti by user (to log out)."""

    strategy = DenylistStrategy()

    def prepare(self) -> None:
        _db.create_tables(self._engine, _db.DENYLIST, _db.LIVE_JTIS)

    def _record(self, issued: Sequence[Claims]) -> None:
        rows = [{"jti": c["jti"], "user_id": c["sub"], "expires_s": c["exp"]} for c in issued]
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


class PlainContender(_JwtContender):
    """No state, no revocation: the baseline."""

    strategy = PlainStrategy()
