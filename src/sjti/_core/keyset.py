"""A set of keys: one active signing key and any number of verification-only keys.

Rotation: make a new key active and keep the old one for verification until the last token
it signed has expired. A token's ``kid`` selects the key; the key fixes the algorithm.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from ..errors import InvalidKeyError
from .algorithms import get_algorithm
from .keys import _PRIVATE_MEMBERS, SigningKey, VerifyingKey

__all__ = ["KeySet"]


class KeySet:
    """Keys by ``kid``. Immutable; :meth:`rotate` returns a new set."""

    __slots__ = ("_active", "_by_kid")

    def __init__(
        self,
        active: SigningKey | None = None,
        verify_only: Iterable[VerifyingKey | SigningKey] = (),
    ) -> None:
        keys: list[VerifyingKey] = [active.verifying_key] if active is not None else []
        keys += [k.verifying_key if isinstance(k, SigningKey) else k for k in verify_only]
        if not keys:
            raise InvalidKeyError("a key set needs at least one key")
        by_kid: dict[str, VerifyingKey] = {}
        for key in keys:
            if key.kid in by_kid:
                raise InvalidKeyError("duplicate kid in key set")
            by_kid[key.kid] = key
        self._active = active
        self._by_kid = by_kid

    @property
    def active(self) -> SigningKey:
        """The key new tokens are signed with."""
        if self._active is None:
            raise InvalidKeyError("this key set can only verify")
        return self._active

    @property
    def has_signing_key(self) -> bool:
        return self._active is not None

    def get(self, kid: str) -> VerifyingKey | None:
        return self._by_kid.get(kid)

    def only_key(self) -> VerifyingKey | None:
        """The key to use for a token without ``kid``: defined only for one-key sets."""
        if len(self._by_kid) == 1:
            return next(iter(self._by_kid.values()))
        return None

    def __iter__(self) -> Iterator[VerifyingKey]:
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)

    def __repr__(self) -> str:
        return f"KeySet(kids={list(self._by_kid)!r})"

    def rotate(self, new_active: SigningKey, *, keep: int = 1) -> KeySet:
        """New active key; the previous active and up to ``keep - 1`` older keys verify."""
        if new_active.kid in self._by_kid:
            raise InvalidKeyError("the new key's kid is already in the key set")
        previous = list(self._by_kid.values())
        if self._active is not None:
            previous.remove(self._active.verifying_key)
            previous.insert(0, self._active.verifying_key)
        return KeySet(new_active, previous[:keep])

    def to_jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS, for boundary services. HMAC keys are left out."""
        return {"keys": [k.to_jwk() for k in self._by_kid.values() if not k.is_symmetric]}

    @classmethod
    def from_jwks(
        cls, jwks: Mapping[str, Any] | str | bytes, *, default_alg: str | None = None
    ) -> KeySet:
        """A verification-only set from a JWKS.

        Refused, as ambiguous: duplicate ``kid``, symmetric and asymmetric keys together,
        public and private keys together, or any key that is invalid or not for signing.
        ``default_alg`` pins keys published without ``alg`` (some providers omit it for RSA);
        a key whose own ``alg`` differs keeps its own.
        """
        if isinstance(jwks, str | bytes):
            try:
                jwks = orjson.loads(jwks)
            except orjson.JSONDecodeError:
                raise InvalidKeyError("JWKS is not valid JSON") from None
        if not isinstance(jwks, Mapping):
            raise InvalidKeyError("a JWKS is a JSON object")
        entries = jwks.get("keys")
        if not isinstance(entries, list) or not entries:
            raise InvalidKeyError("JWKS 'keys' must be a non-empty list")
        if not all(isinstance(e, Mapping) for e in entries):
            raise InvalidKeyError("every JWKS entry must be an object")
        if len({e.get("kty") == "oct" for e in entries}) > 1:
            raise InvalidKeyError("JWKS mixes symmetric and asymmetric keys")
        asymmetric_private = _PRIVATE_MEMBERS - {"k"}
        privacy = {not asymmetric_private.isdisjoint(e) for e in entries if e.get("kty") != "oct"}
        if len(privacy) > 1:
            raise InvalidKeyError("JWKS mixes public and private keys")
        kids = [e.get("kid") for e in entries]
        if not all(kid is None or isinstance(kid, str) for kid in kids):
            raise InvalidKeyError("JWKS kids must be strings")
        if len(kids) > 1 and (None in kids or len(set(kids)) != len(kids)):
            raise InvalidKeyError("JWKS keys need distinct kids")
        if not all(isinstance(e.get("kty"), str) for e in entries):
            raise InvalidKeyError("every JWKS entry needs a string 'kty'")
        fallback_kty = get_algorithm(default_alg).kty if default_alg is not None else None

        def pinned(entry: Mapping[str, Any]) -> str | None:
            fits = "alg" not in entry and entry.get("kty") == fallback_kty
            return default_alg if fits else None

        return cls(verify_only=[VerifyingKey.from_jwk(e, alg=pinned(e)) for e in entries])
