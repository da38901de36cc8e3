"""Protection at rest of per-user token secrets under a KEK ring kept outside the database.

Each user has a random 32-byte *user key*. The database never stores it in clear: it
stores a :class:`WrappedSecret`, the user key sealed with AES-256-GCM under a
*key-encryption key* (:class:`Kek`) that lives in the environment, not in the database.

Like cryptography's ``MultiFernet``, a :class:`KekRing` holds several KEKs: the first
(the *primary*) wraps, every KEK unwraps, and :meth:`KekRing.rewrap` moves a secret to
the primary without changing the user key, so rotating a KEK logs nobody out.

Blob layout: ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``. The GCM
associated data binds a domain tag, the format version, the KEK id and the user id,
each length-prefixed, so a wrapped secret copied onto another user's row, relabelled
with another KEK id, or altered in any bit fails to open. Every unwrap failure raises
the one opaque :class:`~sjti.errors.UnwrapError`.

Text form, for one database column: ``v1.<kek_id>.<base64url(blob), unpadded>``.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigurationError, InvalidKeyError, MalformedTokenError, UnwrapError
from .binding import USER_KEY_SIZE
from .codec import b64url_decode, b64url_encode

__all__ = [
    "KEK_SIZE",
    "USER_KEY_SIZE",
    "Kek",
    "KekRing",
    "WrappedSecret",
    "generate_user_key",
]

KEK_SIZE = 32

_VERSION = "v1"
_DOMAIN = b"sjti/wrapped-user-key"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_BLOB_SIZE = _NONCE_SIZE + USER_KEY_SIZE + _TAG_SIZE
_BLOB_TEXT = _BLOB_SIZE // 3 * 4  # its base64 length: 60 bytes, 80 characters, no padding
# Generous bound on the text form, checked before any parsing.
_MAX_TEXT_LEN = 512
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def generate_user_key() -> bytes:
    """Return a fresh random user key of :data:`USER_KEY_SIZE` bytes."""
    return secrets.token_bytes(USER_KEY_SIZE)


def _is_kid(value: object) -> bool:
    return isinstance(value, str) and _KID_RE.fullmatch(value) is not None


def _b64url_encode(data: bytes) -> str:
    return b64url_encode(data).decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (one text form per blob); ValueError otherwise."""
    try:
        return b64url_decode(text)
    except MalformedTokenError:
        raise ValueError("not base64url") from None


def _length_prefixed(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


def _aad_prefix(kid: str) -> bytes:
    """The associated data binds domain, version, KEK id and user id, each length-prefixed
    so it is unambiguous; this is the part before the user id (a ring computes it once
    per KEK, see :meth:`KekRing._aad`)."""
    return b"".join(
        _length_prefixed(part) for part in (_DOMAIN, _VERSION.encode("ascii"), kid.encode("ascii"))
    )


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Kek:
    """An AES-256-GCM key-encryption key with a short ASCII id.

    ``kid`` matches ``[A-Za-z0-9_-]{1,64}``; ``key`` is exactly 32 bytes. The repr and
    every error message leave the key bytes out; equality compares them in constant time.
    """

    kid: str
    key: bytes

    def __post_init__(self) -> None:
        if not _is_kid(self.kid):
            raise ConfigurationError("KEK id must match [A-Za-z0-9_-]{1,64}")
        if not isinstance(self.key, bytes) or len(self.key) != KEK_SIZE:
            raise InvalidKeyError(f"KEK {self.kid!r} must be exactly {KEK_SIZE} bytes")

    @classmethod
    def generate(cls, kid: str | None = None) -> Kek:
        """Return a new random KEK; ``kid`` defaults to a short random id."""
        return cls(
            kid=kid if kid is not None else secrets.token_urlsafe(6),
            key=secrets.token_bytes(KEK_SIZE),
        )

    def __repr__(self) -> str:
        return f"Kek(kid={self.kid!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kek):
            return NotImplemented
        return self.kid == other.kid and hmac.compare_digest(self.key, other.key)

    def __hash__(self) -> int:
        return hash((Kek, self.kid))


@dataclass(frozen=True, slots=True)
class WrappedSecret:
    """A user key sealed under the KEK named ``kek_id``; ``blob`` is nonce || ciphertext+tag.

    Holds no secret in clear: this is what the database stores, via :meth:`to_str`.
    """

    kek_id: str
    blob: bytes

    def __post_init__(self) -> None:
        # Data read back from storage: a malformed field is one more unwrap failure.
        if not _is_kid(self.kek_id) or not isinstance(self.blob, bytes):
            raise UnwrapError()

    def to_str(self) -> str:
        """Return the versioned text form ``v1.<kek_id>.<base64url blob>`` for one DB column."""
        return f"{_VERSION}.{self.kek_id}.{_b64url_encode(self.blob)}"

    @classmethod
    def from_str(cls, text: str) -> WrappedSecret:
        """Parse :meth:`to_str` output; anything malformed raises :class:`UnwrapError`."""
        kek_id, encoded = _split_text(text)
        if not _is_kid(kek_id):
            raise UnwrapError()
        return cls(kek_id=kek_id, blob=_decode_blob(encoded))


def _split_text(text: str) -> tuple[str, str]:
    """The KEK id and the encoded blob of a text form (UnwrapError if not that shape)."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT_LEN:
        raise UnwrapError()
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise UnwrapError()
    return parts[1], parts[2]


def _common_head(texts: Sequence[str]) -> str:
    """``v1.<kek_id>.`` if every text is that head and one blob's text, else ``""``."""
    first = texts[0] if texts else None
    if not isinstance(first, str) or not first.startswith(f"{_VERSION}."):
        return ""
    head = first[: first.find(".", len(_VERSION) + 1) + 1]
    size = len(head) + _BLOB_TEXT
    if not head or not all(
        isinstance(t, str) and len(t) == size and t.startswith(head) for t in texts
    ):
        return ""
    return head


def _decode_blob(encoded: str) -> bytes:
    try:
        blob = _b64url_decode(encoded)
    except ValueError:
        raise UnwrapError() from None
    if len(blob) != _BLOB_SIZE:
        raise UnwrapError()
    return blob


class KekRing:
    """KEKs in order of preference: the first (primary) wraps, every one unwraps.

    Rotation: put a new KEK first, :meth:`rewrap` each secret for which
    :meth:`needs_rewrap` holds, then drop the old KEK from the ring.
    """

    __slots__ = ("_aads", "_aeads", "_keks")

    def __init__(self, keks: Sequence[Kek]) -> None:
        keks = tuple(keks)
        if not keks:
            raise ConfigurationError("KEK ring needs at least one KEK")
        if not all(isinstance(kek, Kek) for kek in keks):
            raise ConfigurationError("KEK ring accepts only Kek instances")
        kids = [kek.kid for kek in keks]
        if len(set(kids)) != len(kids):
            raise InvalidKeyError("KEK ring has duplicate KEK ids")
        self._keks: tuple[Kek, ...] = keks
        self._aeads: dict[str, AESGCM] = {kek.kid: AESGCM(kek.key) for kek in keks}
        # Per KEK, the associated data before the user id, computed once (a bulk
        # revocation wraps a million keys).
        self._aads: dict[str, bytes] = {kek.kid: _aad_prefix(kek.kid) for kek in keks}

    @property
    def primary(self) -> Kek:
        """The KEK that wraps new secrets."""
        return self._keks[0]

    @property
    def keks(self) -> tuple[Kek, ...]:
        """All KEKs, primary first."""
        return self._keks

    def __repr__(self) -> str:
        return f"KekRing(kids={[kek.kid for kek in self._keks]!r})"

    def wrap(self, user_id: str, user_key: bytes) -> WrappedSecret:
        """Seal ``user_key`` for ``user_id`` under the primary KEK with a fresh random nonce."""
        if not isinstance(user_key, bytes) or len(user_key) != USER_KEY_SIZE:
            raise InvalidKeyError(f"user key must be exactly {USER_KEY_SIZE} bytes")
        if not isinstance(user_id, str) or not user_id:
            raise ConfigurationError("user id must be a non-empty string")
        try:
            user_id.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigurationError("user id must be encodable as UTF-8") from None
        kid = self.primary.kid
        nonce = secrets.token_bytes(_NONCE_SIZE)
        sealed = self._aeads[kid].encrypt(nonce, user_key, self._aad(kid, user_id))
        return WrappedSecret(kek_id=kid, blob=nonce + sealed)

    def wrap_texts(
        self, user_ids: Sequence[str], user_keys: Sequence[bytes] | None = None
    ) -> list[str]:
        """``[self.wrap(uid, key).to_str() for ...]`` for bulk work (a revocation or a KEK
        re-wrap of a million users): each user's key sealed under the primary KEK, in the
        text form. ``user_keys``: one per id; by default a fresh random key each. The
        random keys and nonces come from one read of the OS random source per call, and
        the blobs are base64-encoded in one pass (a blob is 60 bytes, a multiple of 3, so
        the encoding of all of them is each one's encoding, end to end).
        """
        count = len(user_ids)
        if user_keys is None:
            fresh = secrets.token_bytes(USER_KEY_SIZE * count)
            user_keys = [fresh[i : i + USER_KEY_SIZE] for i in range(0, len(fresh), USER_KEY_SIZE)]
        elif len(user_keys) != count:
            raise ConfigurationError("wrap_texts needs one user key per user id")
        elif not all(isinstance(k, bytes) and len(k) == USER_KEY_SIZE for k in user_keys):
            raise InvalidKeyError(f"user key must be exactly {USER_KEY_SIZE} bytes")
        if not all(isinstance(user_id, str) and user_id for user_id in user_ids):
            raise ConfigurationError("user id must be a non-empty string")
        nonces = secrets.token_bytes(_NONCE_SIZE * count)
        kid = self.primary.kid
        encrypt, prefix = self._aeads[kid].encrypt, self._aads[kid]
        blobs: list[bytes] = []
        try:
            for i, (user_id, user_key) in enumerate(zip(user_ids, user_keys, strict=True)):
                encoded_id = user_id.encode("utf-8")
                nonce = nonces[i * _NONCE_SIZE : (i + 1) * _NONCE_SIZE]
                blobs.append(nonce)
                blobs.append(encrypt(nonce, user_key, prefix + _length_prefixed(encoded_id)))
        except UnicodeEncodeError:
            raise ConfigurationError("user id must be encodable as UTF-8") from None
        text = _b64url_encode(b"".join(blobs))
        head = f"{_VERSION}.{kid}."
        return [head + text[i : i + _BLOB_TEXT] for i in range(0, len(text), _BLOB_TEXT)]

    def unwrap_texts(
        self,
        user_ids: Sequence[str],
        texts: Sequence[str],
        kek_ids: Sequence[str | None] | None = None,
    ) -> list[bytes]:
        """``[self.unwrap_str(uid, text, kek_id=k) for ...]`` for a KEK re-wrap: the same
        checks and the same opaque :class:`UnwrapError` if any text does not open.

        When every text has one KEK's exact shape (the usual case: a batch under the old
        KEK), the blobs are decoded in one strict pass; anything else takes the one-by-one
        path, which refuses exactly what :meth:`unwrap_str` refuses.
        """
        if len(texts) != len(user_ids) or (kek_ids is not None and len(kek_ids) != len(texts)):
            raise ConfigurationError("unwrap_texts needs one text per user id")
        head = _common_head(texts)
        kid = head[len(_VERSION) + 1 : -1]
        if kid not in self._aeads or (kek_ids is not None and any(k != kid for k in kek_ids)):
            given = kek_ids if kek_ids is not None else [None] * len(texts)
            opened = self.unwrap_str
            return [opened(u, t, kek_id=k) for u, t, k in zip(user_ids, texts, given, strict=True)]
        if not all(isinstance(user_id, str) and user_id for user_id in user_ids):
            raise UnwrapError()
        try:
            blobs = _b64url_decode("".join([text[len(head) :] for text in texts]))
            decrypt, prefix = self._aeads[kid].decrypt, self._aads[kid]
            keys = []
            for i, user_id in enumerate(user_ids):
                blob = blobs[i * _BLOB_SIZE : (i + 1) * _BLOB_SIZE]
                aad = prefix + _length_prefixed(user_id.encode("utf-8"))
                keys.append(decrypt(blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], aad))
        except (InvalidTag, ValueError):  # UnicodeError is a ValueError
            raise UnwrapError() from None
        return keys

    def unwrap(self, user_id: str, wrapped: WrappedSecret) -> bytes:
        """Open ``wrapped`` for ``user_id``; any failure raises the opaque :class:`UnwrapError`."""
        if not isinstance(wrapped, WrappedSecret):
            raise UnwrapError()
        return self._open(user_id, wrapped.kek_id, wrapped.blob)

    def unwrap_str(self, user_id: str, text: str, *, kek_id: str | None = None) -> bytes:
        """``unwrap(user_id, WrappedSecret.from_str(text))`` in one pass, for a store's hot
        read: the same checks and the same opaque :class:`UnwrapError`. ``kek_id``: the
        KEK id stored beside the text (a separate column), which must be the text's own.

        A KEK id this ring does not hold is refused before any other check (every id the
        ring holds was validated when its :class:`Kek` was made).
        """
        kid, encoded = _split_text(text)
        if kid not in self._aeads or (kek_id is not None and kek_id != kid):
            raise UnwrapError()
        return self._open(user_id, kid, _decode_blob(encoded))

    def _open(self, user_id: str, kid: str, blob: bytes) -> bytes:
        try:
            if not isinstance(user_id, str) or not user_id:
                raise UnwrapError()
            aead = self._aeads.get(kid)
            if aead is None or len(blob) != _BLOB_SIZE:
                raise UnwrapError()
            aad = self._aad(kid, user_id)
            user_key = aead.decrypt(blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], aad)
        except (InvalidTag, ValueError, TypeError):  # UnicodeError is a ValueError
            raise UnwrapError() from None
        if len(user_key) != USER_KEY_SIZE:
            raise UnwrapError()
        return user_key

    def _aad(self, kid: str, user_id: str) -> bytes:
        """Domain, version, KEK id and user id, length-prefixed (see _aad_prefix)."""
        return self._aads[kid] + _length_prefixed(user_id.encode("utf-8"))

    def rewrap(self, user_id: str, wrapped: WrappedSecret) -> WrappedSecret:
        """Return the same user key wrapped under the primary KEK (nobody is logged out)."""
        return self.wrap(user_id, self.unwrap(user_id, wrapped))

    def needs_rewrap(self, wrapped: WrappedSecret) -> bool:
        """True when ``wrapped`` is not under the primary KEK."""
        return wrapped.kek_id != self.primary.kid

    @classmethod
    def from_config(cls, text: str) -> KekRing:
        """Parse ``"kid:base64url(32 bytes),kid2:..."`` (first is primary).

        Errors name the entry by position only, never its text, which may hold key material.
        """
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError("KEK config is empty")
        keks: list[Kek] = []
        for position, entry in enumerate(text.split(","), start=1):
            kid, sep, encoded = entry.strip().partition(":")
            if not sep:
                raise ConfigurationError(
                    f"KEK config entry {position}: expected 'kid:base64url-key'"
                )
            if not _is_kid(kid):
                raise ConfigurationError(
                    f"KEK config entry {position}: id must match [A-Za-z0-9_-]{{1,64}}"
                )
            try:
                key = _b64url_decode(encoded.rstrip("="))
            except ValueError:
                raise InvalidKeyError(
                    f"KEK config entry {position}: key is not valid base64url"
                ) from None
            if len(key) != KEK_SIZE:
                raise InvalidKeyError(
                    f"KEK config entry {position}: key must decode to {KEK_SIZE} bytes"
                )
            keks.append(Kek(kid=kid, key=key))
        return cls(keks)

    def to_config(self) -> str:
        """Return the :meth:`from_config` text for this ring; it holds the keys, keep it secret."""
        return ",".join(f"{kek.kid}:{_b64url_encode(kek.key)}" for kek in self._keks)
