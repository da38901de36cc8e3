"""The ``sjti`` claim: a MAC over the token's claims under the user's own key.

``sjti = base64url(HMAC-SHA256(user_key, "sjti/v1" NUL canonical_json(claims - sjti)))``

Every claim except ``sjti`` itself is bound (a superset of the registered ones and of any
``scope``/``roles`` the application uses), so holding only the application signing key
lets nobody mint a token for a user, stretch ``exp``, move ``sub``, widen ``aud`` or add a
claim to a captured token. Canonical JSON: orjson with sorted keys at every level, which
is injective on JSON values, so two different claim sets never share an input.

Devices. A user's key record may also list the user's signed-in devices (``sid`` values:
16 random bytes, base64url). Such a key accepts only tokens whose bound ``sid`` is listed:
signing out one device drops its id from the record, which refuses that device's tokens
at once and leaves the others alone. The list rides on the record the lookup reads anyway
(no query more) and holds only active devices (nothing per token). The record, as stores
and caches keep it: the 32-byte secret, then, if devices are tracked, ``0x01`` and each
device id's 16 bytes in sign-in order.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeGuard

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from ..errors import (
    ConfigurationError,
    MalformedTokenError,
    MissingClaimError,
    RevokedTokenError,
)
from .codec import CANONICAL, b64url_decode, b64url_encode

__all__ = [
    "DEVICE_ID_SIZE",
    "SID_CLAIM",
    "SJTI_CLAIM",
    "USER_KEY_SIZE",
    "UserKey",
    "check_sjti",
    "compute_sjti",
    "device_id_bytes",
    "device_ids",
    "devices_record",
    "is_record",
    "new_device_id",
]

SJTI_CLAIM: Final = "sjti"
SID_CLAIM: Final = "sid"
USER_KEY_SIZE: Final = 32
DEVICE_ID_SIZE: Final = 16
_DEVICES_TAG: Final = b"\x01"
_DOMAIN: Final = b"sjti/v1\x00"
_SJTI_LENGTH: Final = 43  # base64url of 32 bytes, unpadded
_SHA256: Final = hashes.SHA256()


class UserKey:
    """A user's token key (the blog's ``token_secret``), ready to MAC.

    Holds 32 random bytes; the repr never shows them.
    """

    # The HMAC state is prepared on first use and copied after (saves ~1 µs a MAC); it costs
    # ~800 bytes, so caches keep raw secrets and build UserKeys only for hot users.
    __slots__ = ("_secret", "_template", "devices")

    def __init__(self, secret: bytes, devices: Iterable[str] | None = None) -> None:
        if not isinstance(secret, bytes) or len(secret) != USER_KEY_SIZE:
            raise ConfigurationError(f"a user key is exactly {USER_KEY_SIZE} bytes")
        self._secret = secret
        self._template: crypto_hmac.HMAC | None = None
        # None: devices are not tracked (any sid, or none, is accepted with a valid sjti).
        self.devices: frozenset[str] | None = None if devices is None else frozenset(devices)

    @classmethod
    def from_record(cls, record: bytes) -> UserKey:
        """The key a store's record holds (secret, then the device list if tracked)."""
        if len(record) == USER_KEY_SIZE:
            return cls(record)
        return cls(record[:USER_KEY_SIZE], device_ids(record))

    def record(self) -> bytes:
        """This key as stores and caches keep it (devices in no particular order)."""
        if self.devices is None:
            return self._secret
        return devices_record(self._secret, sorted(self.devices))

    @classmethod
    def generate(cls) -> UserKey:
        return cls(secrets.token_bytes(USER_KEY_SIZE))

    def __repr__(self) -> str:
        return "UserKey(<secret>)"

    def _mac(self, data: bytes) -> bytes:
        template = self._template
        if template is None:  # a race only builds the same state twice
            template = self._template = crypto_hmac.HMAC(self._secret, _SHA256)
        mac = template.copy()
        mac.update(data)
        return mac.finalize()

    def secret_bytes(self) -> bytes:
        """The raw key, for stores that wrap it. Never log or return it to a client."""
        return self._secret


def _binding_input(claims: dict[str, Any]) -> bytes:
    if SJTI_CLAIM in claims:
        claims = claims.copy()
        del claims[SJTI_CLAIM]
    try:
        return _DOMAIN + orjson.dumps(claims, option=CANONICAL)
    except TypeError:
        raise ConfigurationError("claims must be JSON values with string keys") from None


def compute_sjti(claims: dict[str, Any], user_key: UserKey) -> str:
    """The ``sjti`` value for these claims (any ``sjti`` already in them is ignored)."""
    return b64url_encode(user_key._mac(_binding_input(claims))).decode("ascii")


def check_sjti(claims: dict[str, Any], user_key: UserKey) -> None:
    """The user layer: raise :class:`RevokedTokenError` unless ``sjti`` matches.

    A token whose key was rotated away, or whose claims were changed by someone holding
    only the application key, fails the same way: the MAC does not match.
    """
    if SJTI_CLAIM not in claims:
        raise MissingClaimError(SJTI_CLAIM)
    presented = claims[SJTI_CLAIM]
    if type(presented) is not str or len(presented) != _SJTI_LENGTH:
        raise RevokedTokenError()
    expected = b64url_encode(user_key._mac(_binding_input(claims)))
    if not hmac.compare_digest(expected, presented.encode("ascii", "replace")):
        raise RevokedTokenError()
    devices = user_key.devices
    # The sid is bound by the MAC just checked: only the user's key could have put it there.
    if devices is not None and claims.get(SID_CLAIM) not in devices:
        raise RevokedTokenError()


# -- device ids -----------------------------------------------------------------------------


def new_device_id() -> str:
    """A fresh device (session) id: 16 random bytes, base64url (the ``sid`` claim)."""
    return b64url_encode(secrets.token_bytes(DEVICE_ID_SIZE)).decode("ascii")


def device_id_bytes(sid: str) -> bytes:
    """The 16 bytes of a device id; :class:`ConfigurationError` if it is not one."""
    try:
        raw = b64url_decode(sid)
    except (MalformedTokenError, TypeError):
        raw = b""
    if len(raw) != DEVICE_ID_SIZE:
        raise ConfigurationError("a device id is 16 bytes, base64url (see new_device_id)")
    return raw


def devices_record(secret: bytes, sids: Sequence[str]) -> bytes:
    """The record of a key that tracks these devices (``sids`` in sign-in order)."""
    return secret + _DEVICES_TAG + b"".join(device_id_bytes(sid) for sid in sids)


def device_ids(record: bytes) -> list[str]:
    """The device ids a record lists, in sign-in order (empty if it tracks none)."""
    if not is_record(record) or len(record) == USER_KEY_SIZE:
        raise ConfigurationError("not a user key record")
    body = record[USER_KEY_SIZE + 1 :]
    return [
        b64url_encode(body[at : at + DEVICE_ID_SIZE]).decode("ascii")
        for at in range(0, len(body), DEVICE_ID_SIZE)
    ]


def is_record(value: object) -> TypeGuard[bytes]:
    """Whether ``value`` is a key record: 32 bytes, or 32 + ``0x01`` + n x 16."""
    if type(value) is not bytes:
        return False
    size = len(value)
    if size == USER_KEY_SIZE:
        return True
    return (
        size > USER_KEY_SIZE
        and value[USER_KEY_SIZE : USER_KEY_SIZE + 1] == _DEVICES_TAG
        and (size - USER_KEY_SIZE - 1) % DEVICE_ID_SIZE == 0
    )
