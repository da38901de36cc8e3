"""The ``session`` contender: opaque split tokens, records in ``cmp_session``.

The store keeps ``SHA-256(secret)``, never the secret. :class:`WeakSessionContender` is
the same design done wrong on purpose (it keeps the raw secret): the tests use it to prove
that the read-only-leak cells are computed, not typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from .._core.strategies import SessionRecord, SessionStrategy
from .._core.strategies.session import check_record, verifier_hash
from ..errors import RevokedTokenError
from . import _db
from ._contender import Contender, DeviceScope
from ._world import TTL_S, AppSecrets, now_ms

__all__ = ["SessionContender", "WeakSessionContender"]


class SessionContender:
    """Split-token sessions on SQL: a MAC check without the store, then one record read."""

    strategy = SessionStrategy()
    keeps_raw_secret = False

    def __init__(self, engine: Engine, app: AppSecrets) -> None:
        self._engine = engine
        self._app = app
        self._key = app.session_key

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def backend(self) -> str:
        return _db.backend_of(self._engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def state_size(self) -> tuple[int, str]:
        size, rows = _db.state_bytes(self._engine)
        return size, f"{rows} rows"

    def read_copy(self, scratch: Path) -> _db.Dump:
        return _db.read_copy(self._engine, scratch)

    def commands_sent(self) -> int:
        return 0

    @property
    def needs_state(self) -> bool:
        return True

    def prepare(self) -> None:
        _db.create_tables(self._engine, _db.SESSIONS)

    def on(self, engine: Engine) -> Contender:
        return type(self)(engine, self._app)

    def peer(self) -> Contender:
        return type(self)(_db.twin_engine(self._engine), self._app)

    def close(self) -> None:
        self._engine.dispose()

    def issue(self, users: Sequence[str]) -> list[str]:
        at = now_ms()
        tokens, rows = [], []
        for user in users:
            token, record = self.strategy.mint(self._key, user=user, now_ms=at, ttl_ms=TTL_S * 1000)
            tokens.append(token)
            rows.append(self._row(token, record))
        with _db.guarded(), self._engine.begin() as conn:
            conn.execute(insert(_db.SESSIONS), rows)
        return tokens

    def _row(self, token: str, record: SessionRecord) -> dict[str, object]:
        stored = self.strategy.check_mac(token, self._key).secret if self.keeps_raw_secret else None
        return {
            "id": record.id,
            "user_id": record.user,
            "verifier": stored if stored is not None else record.verifier_hash,
            "created_ms": record.created_at_ms,
            "expires_ms": record.expires_at_ms,
            "revoked": False,
        }

    def check_boundary(self, token: str) -> None:
        self.strategy.check_mac(token, self._key)

    def verify(self, token: str) -> str:
        parsed = self.strategy.check_mac(token, self._key)
        record = self._load(parsed.id)
        check_record(parsed, record, now_ms=now_ms())
        if record is None:  # check_record already refused it; this keeps mypy sure
            raise RevokedTokenError()
        return record.user

    def verify_with_user_row(self, token: str) -> str:
        """The session read gives the user id; the app then loads the user's row."""
        user = self.verify(token)
        with _db.guarded(), self._engine.connect() as conn:
            query = select(_db.APP_USERS.c.id).where(_db.APP_USERS.c.id == user)
            if conn.execute(query).first() is None:
                raise RevokedTokenError()
        return user

    def _load(self, session_id: bytes) -> SessionRecord | None:
        sessions = _db.SESSIONS
        with _db.guarded(), self._engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            return None
        stored = bytes(row.verifier)
        return SessionRecord(
            id=bytes(row.id),
            verifier_hash=verifier_hash(stored) if self.keeps_raw_secret else stored,
            user=row.user_id,
            created_at_ms=int(row.created_ms),
            expires_at_ms=int(row.expires_ms),
            revoked=bool(row.revoked),
        )

    def revoke_users(self, users: Sequence[str]) -> None:
        sessions = _db.SESSIONS
        with _db.guarded(), self._engine.begin() as conn:
            for part in _db.chunks(sorted(set(users))):
                conn.execute(
                    update(sessions).where(sessions.c.user_id.in_(part)).values(revoked=True)
                )

    def revoke_token(self, token: str) -> bool:
        parsed = self.strategy.check_mac(token, self._key)
        sessions = _db.SESSIONS
        with _db.guarded(), self._engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id == parsed.id).values(revoked=True))
        return True

    # --- devices: a session is a device, and its token the device's only token ---------

    def with_devices(self) -> Contender:
        return self

    def sign_in(self, user: str) -> str:
        """A new session; its token is the device's handle."""
        (token,) = self.issue([user])
        return token

    def issue_on(self, user: str, device: str, count: int) -> list[str]:
        """The session's own token: a session mints no second one."""
        return [device]

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        self.revoke_token(device)
        return "device"


class WeakSessionContender(SessionContender):
    """A broken store for the tests: keeps the raw session secret instead of its hash."""

    keeps_raw_secret = True
