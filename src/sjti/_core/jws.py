"""Compact JWS (RFC 7515 §7.1): sign, and verify under a key set.

Verification order: size limit, alphabet and shape, header (cached per distinct header
segment, since every token a key signs shares it), key by ``kid``, algorithm pinned by the
key, signature. The payload is returned undecoded JSON-wise; the JWT layer parses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ..errors import (
    AlgorithmNotAllowedError,
    BadAlgHeaderError,
    BadKidHeaderError,
    InvalidSignatureError,
    MalformedTokenError,
    TokenTooLargeError,
    UnknownKeyError,
    UnsupportedHeaderError,
)
from .algorithms import ALGORITHMS
from .codec import B64URL_ALPHABET, b64url_decode_unchecked, b64url_encode, dumps, loads_object
from .keys import SigningKey, VerifyingKey
from .keyset import KeySet

__all__ = ["DEFAULT_MAX_TOKEN_SIZE", "CompactVerifier", "encode_header", "sign_compact"]

DEFAULT_MAX_TOKEN_SIZE: Final = 8 * 1024
_TOKEN_ALPHABET: Final = B64URL_ALPHABET + b"."
# We implement no extension (crit), no unencoded payload (b64), no compression (zip) and
# no encryption (enc): a header asking for any of them is refused, not ignored.
_REFUSED_HEADER_MEMBERS: Final = frozenset({"crit", "b64", "zip", "enc"})
_HEADER_CACHE_SIZE: Final = 64


def encode_header(key: SigningKey, extra: Mapping[str, Any] | None = None) -> bytes:
    """The base64url header segment for ``key`` (``alg`` and ``kid`` from the key)."""
    header: dict[str, Any] = dict(extra or {})
    if "alg" in header or "kid" in header:
        raise ValueError("alg and kid come from the key")
    header = {"alg": key.alg, "kid": key.kid, **header}
    return b64url_encode(dumps(header))


def sign_compact(header_segment: bytes, payload: bytes, key: SigningKey) -> bytes:
    """``header.payload.signature`` with a header segment from :func:`encode_header`."""
    signing_input = header_segment + b"." + b64url_encode(payload)
    return signing_input + b"." + b64url_encode(key.sign(signing_input))


class CompactVerifier:
    """Verifies compact JWS under a :class:`KeySet`. Thread-safe; holds a small cache."""

    __slots__ = ("_check_header", "_header_cache", "_keys", "max_size")

    def __init__(
        self,
        keys: KeySet,
        *,
        max_size: int = DEFAULT_MAX_TOKEN_SIZE,
        check_header: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """``check_header`` (e.g. the ``typ`` rule) runs once per distinct header segment."""
        self._keys = keys
        self.max_size = max_size
        self._check_header = check_header
        self._header_cache: dict[bytes, tuple[dict[str, Any], VerifyingKey]] = {}

    @property
    def keys(self) -> KeySet:
        """Read-only: the header cache holds keys from this set."""
        return self._keys

    def verify(self, token: str | bytes) -> tuple[dict[str, Any], bytes]:
        """Return ``(header, payload)`` or raise the specific :class:`TokenError`.

        The returned header may be shared between calls: do not mutate it.
        """
        if isinstance(token, str):
            if len(token) > self.max_size:
                raise TokenTooLargeError()
            if not token.isascii():
                raise MalformedTokenError("token is not ASCII")
            raw = token.encode("ascii")
        elif isinstance(token, bytes):
            raw = token
        else:
            raise MalformedTokenError("token must be str or bytes")
        if len(raw) > self.max_size:
            raise TokenTooLargeError()
        if raw.translate(None, _TOKEN_ALPHABET):
            raise MalformedTokenError("invalid character in token")
        if raw.count(b".") != 2:
            raise MalformedTokenError("a compact JWS has exactly three segments")
        signing_input, _, signature = raw.rpartition(b".")
        header_segment, _, payload_segment = signing_input.partition(b".")

        cached = self._header_cache.get(header_segment)
        if cached is None:
            cached = self._read_header(header_segment)
        header, key = cached

        if not key._ops.verify_encoded(signing_input, signature, b64url_decode_unchecked):
            # Say "malformed" rather than "bad signature" when the encoding itself is off.
            b64url_decode_unchecked(signature)
            raise InvalidSignatureError()
        return header, b64url_decode_unchecked(payload_segment)

    def _read_header(self, segment: bytes) -> tuple[dict[str, Any], VerifyingKey]:
        header = loads_object(b64url_decode_unchecked(segment))
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise BadAlgHeaderError()
        if alg not in ALGORITHMS:
            raise AlgorithmNotAllowedError()  # "none" in any casing lands here
        refused = _REFUSED_HEADER_MEMBERS.intersection(header)
        if refused:
            raise UnsupportedHeaderError(f"header member not supported: {sorted(refused)[0]}")
        if "kid" in header:
            kid = header["kid"]
            if not isinstance(kid, str):
                raise BadKidHeaderError()
            key = self._keys.get(kid)
        else:
            key = self._keys.only_key()
        if key is None:
            raise UnknownKeyError()
        if alg != key.alg:
            raise AlgorithmNotAllowedError()
        if self._check_header is not None:
            self._check_header(header)
        entry = (header, key)
        # Bounded: headers an attacker varies can only make it start over.
        if len(self._header_cache) >= _HEADER_CACHE_SIZE:
            self._header_cache.clear()
        self._header_cache[segment] = entry
        return entry
