"""The ``sjti`` claim: a MAC over the token's claims under the user's own key.

``sjti = base64url(HMAC-SHA256(user_key, "sjti/v1" NUL canonical_json(claims - sjti)))``

Every claim except ``sjti`` itself is bound (a superset of the registered ones and of any
``scope``/``roles`` the application uses), so holding only the application signing key
lets nobody mint a token for a user, stretch ``exp``, move ``sub``, widen ``aud`` or add a
claim to a captured token. Canonical JSON: orjson with sorted keys at every level, which
is injective on JSON values, so two different claim sets never share an input.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from ..errors import ConfigurationError, MissingClaimError, RevokedTokenError
from .codec import CANONICAL, b64url_encode

__all__ = ["SJTI_CLAIM", "USER_KEY_SIZE", "UserKey", "check_sjti", "compute_sjti"]

SJTI_CLAIM: Final = "sjti"
USER_KEY_SIZE: Final = 32
_DOMAIN: Final = b"sjti/v1\x00"
_SJTI_LENGTH: Final = 43  # base64url of 32 bytes, unpadded
_SHA256: Final = hashes.SHA256()


class UserKey:
    """A user's token key (the blog's ``token_secret``), ready to MAC.

    Holds 32 random bytes; the repr never shows them.
    """

    # The HMAC state is prepared on first use and copied after (saves ~1 µs a MAC); it costs
    # ~800 bytes, so caches keep raw secrets and build UserKeys only for hot users.
    __slots__ = ("_secret", "_template")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != USER_KEY_SIZE:
            raise ConfigurationError(f"a user key is exactly {USER_KEY_SIZE} bytes")
        self._secret = secret
        self._template: crypto_hmac.HMAC | None = None

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
