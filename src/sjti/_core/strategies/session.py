"""``session``: stateful split tokens, the critics' alternative to JWTs.

A session token is opaque, not a JWT::

    token = b64url(id) "." b64url(secret) "." b64url(mac)
    mac   = HMAC-SHA256(server_key, DOMAIN || id || secret)

``id`` is 16 random bytes (the lookup key), ``secret`` 32 random bytes. The store keeps a
:class:`SessionRecord`: the id, ``SHA-256(secret)``, the user, the expiry and a revoked
flag, **never the secret**. What each part buys:

* The MAC lets any node holding the server key drop forged or garbled tokens without a
  database read (:func:`check_mac`, the session's "boundary layer").
* The stored hash means a read-only copy of the database authenticates nobody: the copy
  holds ``SHA-256(secret)``, and inverting it means a 2^256 preimage search. This holds even
  for an attacker who also has the server key. (A plain hash suffices: the secret is 256
  random bits, so there is nothing for a slow password hash to protect.)
* With database *write* access but not the server key, an attacker can plant a record but
  cannot produce the MAC for a token that would find it.

Costs: a database read on every request (the record must be fetched to learn expiry and
revocation); state is O(live sessions). Revoke one session: flag its record. Revoke a user:
flag every record of the user (one statement on a store indexed by user).

Why this is not a :class:`~sjti._core.strategies.base.Strategy`: there are no claims to
stamp or to check, the state key comes out of the token itself rather than a verified
claim, and the check needs the raw token and the server key, not boundary-verified claims.
:class:`SessionStrategy` keeps the same verbs (``name``, ``state_key``, ``check``,
``revoke``) with the signatures this design actually needs, plus ``mint`` in place of
``stamp``.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from ...errors import (
    ConfigurationError,
    ExpiredTokenError,
    InvalidSignatureError,
    MalformedTokenError,
    RevokedTokenError,
)
from ..codec import b64url_decode, b64url_encode

__all__ = [
    "SESSION_ID_SIZE",
    "SESSION_SECRET_SIZE",
    "SESSION_TOKEN_LENGTH",
    "SessionKey",
    "SessionRecord",
    "SessionStrategy",
    "SessionToken",
    "check",
    "check_mac",
    "check_record",
    "mint",
    "parse",
    "verifier_hash",
]

SESSION_ID_SIZE: Final = 16
SESSION_SECRET_SIZE: Final = 32
_MAC_SIZE: Final = 32
_MIN_SERVER_KEY_SIZE: Final = 32
_DOMAIN: Final = b"sjti-session/v1\x00"  # id and secret have fixed sizes: no ambiguity
_ID_CHARS: Final = 22  # unpadded base64url of 16 bytes
_SECRET_CHARS: Final = 43  # ... of 32 bytes
_MAC_CHARS: Final = 43
SESSION_TOKEN_LENGTH: Final = _ID_CHARS + 1 + _SECRET_CHARS + 1 + _MAC_CHARS  # 110
DEFAULT_TTL_MS: Final = 900_000  # the access-token default, for a like-for-like comparison
_SHA256: Final = hashes.SHA256()


class SessionKey:
    """The server's MAC key for session tokens (at least 32 bytes). The repr hides it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < _MIN_SERVER_KEY_SIZE:
            raise ConfigurationError(f"a session key is at least {_MIN_SERVER_KEY_SIZE} bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> SessionKey:
        return cls(secrets.token_bytes(_MIN_SERVER_KEY_SIZE))

    def __repr__(self) -> str:
        return "SessionKey(<secret>)"

    def _mac(self, session_id: bytes, secret: bytes) -> bytes:
        mac = crypto_hmac.HMAC(self._secret, _SHA256)
        mac.update(_DOMAIN + session_id + secret)
        return mac.finalize()


def verifier_hash(secret: bytes) -> bytes:
    """``SHA-256(secret)``: what the store keeps in place of the secret."""
    digest = hashes.Hash(_SHA256)
    digest.update(secret)
    return digest.finalize()


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What the store keeps for one session. Holds nothing that authenticates."""

    id: bytes
    verifier_hash: bytes = field(repr=False)
    user: str
    created_at_ms: int
    expires_at_ms: int
    revoked: bool = False

    @property
    def key(self) -> str:
        """The store's lookup key: ``b64url(id)``, as :meth:`SessionStrategy.state_key`."""
        return b64url_encode(self.id).decode("ascii")

    def revoke(self) -> SessionRecord:
        return dataclasses.replace(self, revoked=True)


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A parsed (not yet verified) session token. The repr shows only the id."""

    id: bytes
    secret: bytes = field(repr=False)
    mac: bytes = field(repr=False)


def mint(
    server_key: SessionKey, *, user: str, now_ms: int, ttl_ms: int = DEFAULT_TTL_MS
) -> tuple[str, SessionRecord]:
    """A new session: the token for the client and the record for the store."""
    if not isinstance(user, str) or not user:
        raise ConfigurationError("user must be a non-empty string")
    if type(now_ms) is not int or now_ms < 0:
        raise ConfigurationError("now_ms must be non-negative integer milliseconds")
    if type(ttl_ms) is not int or ttl_ms <= 0:
        raise ConfigurationError("ttl_ms must be a positive number of milliseconds")
    session_id = secrets.token_bytes(SESSION_ID_SIZE)
    secret = secrets.token_bytes(SESSION_SECRET_SIZE)
    token = b".".join(
        (
            b64url_encode(session_id),
            b64url_encode(secret),
            b64url_encode(server_key._mac(session_id, secret)),
        )
    ).decode("ascii")
    record = SessionRecord(
        id=session_id,
        verifier_hash=verifier_hash(secret),
        user=user,
        created_at_ms=now_ms,
        expires_at_ms=now_ms + ttl_ms,
    )
    return token, record


def parse(token: str | bytes) -> SessionToken:
    """Split a token into id, secret and MAC: exact size first, then strict base64url.

    Anything else raises :class:`MalformedTokenError`. Nothing is verified here.
    """
    if not isinstance(token, str | bytes) or len(token) != SESSION_TOKEN_LENGTH:
        raise MalformedTokenError("session token has the wrong size")
    if isinstance(token, str):
        if not token.isascii():
            raise MalformedTokenError("session token is not ASCII")
        token = token.encode("ascii")
    parts = token.split(b".")
    if len(parts) != 3 or tuple(map(len, parts)) != (_ID_CHARS, _SECRET_CHARS, _MAC_CHARS):
        raise MalformedTokenError("session token has the wrong shape")
    session_id, secret, mac = (b64url_decode(part) for part in parts)
    return SessionToken(session_id, secret, mac)


def check_mac(token: str | bytes, server_key: SessionKey) -> SessionToken:
    """The DB-free layer: parse, then the MAC in constant time (:class:`InvalidSignatureError`).

    Run this before fetching the record, so forged tokens cost no database read.
    """
    parsed = parse(token)
    if not hmac.compare_digest(server_key._mac(parsed.id, parsed.secret), parsed.mac):
        raise InvalidSignatureError()
    return parsed


def check_record(parsed: SessionToken, record: SessionRecord | None, *, now_ms: int) -> None:
    """The stateful layer: the record must exist, match the secret, be live and unexpired.

    A missing record, another session's record, a secret that does not hash to the stored
    verifier and a revoked record all raise the same :class:`RevokedTokenError`.
    """
    if record is None or not hmac.compare_digest(record.id, parsed.id):
        raise RevokedTokenError()
    if not hmac.compare_digest(verifier_hash(parsed.secret), record.verifier_hash):
        raise RevokedTokenError()
    if record.revoked:
        raise RevokedTokenError()
    if now_ms >= record.expires_at_ms:
        raise ExpiredTokenError()


def check(
    token: str | bytes, record: SessionRecord | None, server_key: SessionKey, *, now_ms: int
) -> None:
    """Both layers: :func:`check_mac` then :func:`check_record`."""
    check_record(check_mac(token, server_key), record, now_ms=now_ms)


class SessionStrategy:
    """The split-token design behind the strategy verbs. State: :class:`SessionRecord`."""

    __slots__ = ()
    name: Final = "session"
    needs_state: Final = True

    def mint(
        self, server_key: SessionKey, *, user: str, now_ms: int, ttl_ms: int = DEFAULT_TTL_MS
    ) -> tuple[str, SessionRecord]:
        return mint(server_key, user=user, now_ms=now_ms, ttl_ms=ttl_ms)

    def state_key(self, token: str | bytes) -> str:
        """``b64url(id)`` of a well-formed token (see :attr:`SessionRecord.key`).

        Unverified: call :meth:`check_mac` first to spare the store forged lookups.
        """
        return b64url_encode(parse(token).id).decode("ascii")

    def check_mac(self, token: str | bytes, server_key: SessionKey) -> SessionToken:
        return check_mac(token, server_key)

    def check(
        self,
        token: str | bytes,
        state: SessionRecord | None,
        server_key: SessionKey,
        *,
        now_ms: int,
    ) -> None:
        check(token, state, server_key, now_ms=now_ms)

    def revoke(self, state: SessionRecord, *, now_ms: int) -> SessionRecord:
        return state.revoke()
