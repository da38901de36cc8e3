"""The key file: signing keys, the refresh-token MAC key and (in development) the KEK.

Created on first start with mode 0600. Several workers may start at once: each writes a
complete candidate to a private temporary file and publishes it with ``os.link``, which
fails if the file already exists, so exactly one candidate wins and every process (the
winners and the losers) then reads the same, complete file. Nobody ever reads a partial
file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._core.keys import SigningKey
from ._core.keyset import KeySet
from ._core.strategies.session import SessionKey
from ._core.wrapping import Kek, KekRing
from .errors import ConfigurationError
from .settings import Settings

__all__ = ["KeyMaterial", "dev_kek_ring", "load_key_material"]

logger = logging.getLogger("sjti")
_VERSION = 1
# RFC 9864: two names for one signature (Ed25519 keys, PureEdDSA). Switching SJTI_ALG
# between them keeps the key, its kid and every session; only the name changes.
_ED25519_NAMES = frozenset({"EdDSA", "Ed25519"})


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """What the service signs and wraps with. The repr shows no secret."""

    keys: KeySet
    refresh_key: SessionKey
    kek_ring: KekRing
    kek_generated: bool  # the KEK came from the key file (development only)

    def __repr__(self) -> str:
        return f"KeyMaterial(kid={self.keys.active.kid!r}, kek_generated={self.kek_generated})"


def _new_document(alg: str) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "signing_keys": [SigningKey.generate(alg).export_private_jwk()],
        "refresh_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii"),
        "dev_kek": KekRing([Kek.generate("dev")]).to_config(),
    }


def _create(path: Path, alg: str) -> bool:
    """Publish a fresh key file at ``path``; False if another process got there first."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(_new_document(alg), handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        return True
    finally:
        temp.unlink(missing_ok=True)


def dev_kek_ring(path: Path) -> KekRing | None:
    """The development KEK a key file holds (secrets wrapped before SJTI_KEK was set), or
    ``None`` when there is no such file or no dev KEK in it."""
    if not path.exists():
        return None
    dev = _read(path).get("dev_kek")
    return KekRing.from_config(str(dev)) if dev else None


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read key file {path}") from exc
    if not isinstance(document, dict) or document.get("version") != _VERSION:
        raise ConfigurationError(f"key file {path} has an unknown format")
    return document


def _renamed(key: SigningKey, jwk: dict[str, Any], alg: str, path: Path) -> SigningKey:
    """The active Ed25519 key under the other RFC 9864 name (in memory; the file stays)."""
    logger.warning(
        "key file %s holds the active key as %s; signing as %s (SJTI_ALG) with the same "
        "key and kid. Access tokens that carry %s are refused (clients refresh; refresh "
        "tokens stay valid)",
        path,
        key.alg,
        alg,
        key.alg,
    )
    return SigningKey.from_jwk({**jwk, "alg": alg})


def load_key_material(settings: Settings) -> KeyMaterial:
    """Read the key file (creating it on first start) and pick the KEK ring.

    With ``database_url = "memory://"`` nothing is read or written: fresh keys live and
    die with the process, like the users' keys in the in-memory store."""
    if settings.in_memory:
        return _material(_new_document(settings.alg), settings, Path("(memory)"), quiet=True)
    path = Path(settings.key_file)
    if not path.exists() and _create(path, settings.alg):
        logger.info("created key file %s (mode 0600)", path)
    return _material(_read(path), settings, path)


def _material(
    document: dict[str, Any], settings: Settings, path: Path, *, quiet: bool = False
) -> KeyMaterial:
    try:
        signing = [SigningKey.from_jwk(jwk) for jwk in document["signing_keys"]]
        refresh = SessionKey(base64.urlsafe_b64decode(document["refresh_key"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"key file {path} is damaged") from exc
    if signing[0].alg != settings.alg and {signing[0].alg, settings.alg} <= _ED25519_NAMES:
        signing[0] = _renamed(signing[0], document["signing_keys"][0], settings.alg, path)
    if signing[0].alg != settings.alg:
        raise ConfigurationError(
            f"key file {path} holds a {signing[0].alg} key but SJTI_ALG is {settings.alg}: "
            "move the file away to make a new one"
        )
    if settings.kek is not None:
        ring = KekRing.from_config(settings.kek.get_secret_value())
        return KeyMaterial(KeySet(signing[0], signing[1:]), refresh, ring, kek_generated=False)
    if not quiet:
        logger.warning(
            "!!! NO SJTI_KEK: user secrets are wrapped with a development KEK stored in %s, "
            "next to nothing else. Production MUST set SJTI_KEK (and SJTI_ENV=production) !!!",
            path,
        )
    ring = KekRing.from_config(str(document["dev_kek"]))
    return KeyMaterial(KeySet(signing[0], signing[1:]), refresh, ring, kek_generated=True)
