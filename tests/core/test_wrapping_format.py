"""The wrapped-secret wire format, pinned by a known-answer vector.

Every user key at rest is stored in this format. A change to any detail of it (the length
prefix width, the associated data, the text form) would orphan every stored secret, and
round-trip tests cannot notice: they wrap and unwrap with the same changed code. These
vectors were made once, independently of ``sjti._core.wrapping``, with AESGCM directly.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sjti._core import wrapping
from sjti._core.wrapping import Kek, KekRing, WrappedSecret
from sjti.errors import ConfigurationError, InvalidKeyError, UnwrapError

KEK = bytes(range(32))
USER_KEY = bytes(range(100, 132))
NONCE = bytes(range(200, 212))
USER_ID = "alïce"  # non-ASCII on purpose: the user id is bound as UTF-8
# The associated data, spelled out: four big-endian 4-byte length prefixes, each followed
# by its part: the domain tag, the format version, the KEK id and the user id.
ASSOCIATED_DATA = bytes.fromhex(
    "00000015" + b"sjti/wrapped-user-key".hex()
    + "00000002" + b"v1".hex()
    + "00000005" + b"kek-1".hex()
    + "00000006" + "alïce".encode().hex()
)  # fmt: skip
STORED = "v1.kek-1.yMnKy8zNzs_Q0dLTdR0HvO6lkUsYUXHRbneZZ5Tymt98EtJfkdRFnloQKWrSb0OMpHVNxZCXVsvBzTYM"


def ring() -> KekRing:
    return KekRing([Kek("kek-1", KEK)])


def test_the_vector_is_what_aes_gcm_gives_for_the_documented_layout() -> None:
    """The vector itself: nonce || AES-256-GCM(user key, associated data) in base64url."""
    blob = NONCE + AESGCM(KEK).encrypt(NONCE, USER_KEY, ASSOCIATED_DATA)
    assert "v1.kek-1." + base64.urlsafe_b64encode(blob).rstrip(b"=").decode() == STORED


def test_a_stored_secret_still_opens() -> None:
    """A secret written by any earlier release must open: this text is in databases."""
    assert ring().unwrap(USER_ID, WrappedSecret.from_str(STORED)) == USER_KEY


def test_wrap_writes_exactly_the_stored_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the nonce fixed, wrapping gives the vector byte for byte."""
    monkeypatch.setattr(wrapping.secrets, "token_bytes", lambda size: NONCE[:size])
    assert ring().wrap(USER_ID, USER_KEY).to_str() == STORED


@pytest.mark.parametrize("user_id", ["alice", "alïce ", "ALÏCE", "alï"])
def test_the_vector_opens_for_its_user_only(user_id: str) -> None:
    """The user id is in the associated data exactly, as UTF-8."""
    with pytest.raises(UnwrapError):
        ring().unwrap(user_id, WrappedSecret.from_str(STORED))


def test_rewrap_keeps_the_user_key_of_a_stored_secret() -> None:
    """KEK rotation re-wraps an old row without changing the key inside it."""
    new = KekRing([Kek("kek-2", bytes(32)), Kek("kek-1", KEK)])
    moved = new.rewrap(USER_ID, WrappedSecret.from_str(STORED))
    assert moved.kek_id == "kek-2"
    assert new.unwrap(USER_ID, moved) == USER_KEY


# ---------------------------------------------------------------------------------------
# the text form's limits


@pytest.mark.parametrize("text", [None, 1, b"v1.kek-1.AAAA", ["v1", "kek-1", "AAAA"]])
def test_from_str_refuses_non_text(text: Any) -> None:
    """Whatever a driver hands back, a non-string is an unwrap failure, not a crash."""
    with pytest.raises(UnwrapError):
        WrappedSecret.from_str(text)


# ---------------------------------------------------------------------------------------
# unwrap misuse: always the one opaque error


@pytest.mark.parametrize("user_id", ["", 1, None, b"alice"])
def test_unwrap_refuses_a_user_id_that_is_not_a_non_empty_string(user_id: Any) -> None:
    """Misuse fails as UnwrapError, the one error callers handle, never AttributeError."""
    with pytest.raises(UnwrapError):
        ring().unwrap(user_id, WrappedSecret.from_str(STORED))


@pytest.mark.parametrize("wrapped", [STORED, None, b"x" * 60])
def test_unwrap_refuses_anything_but_a_wrapped_secret(wrapped: Any) -> None:
    """The text form must be parsed first; a raw string is not silently accepted."""
    with pytest.raises(UnwrapError):
        ring().unwrap(USER_ID, wrapped)


# ---------------------------------------------------------------------------------------
# the KEK config


def test_kek_config_errors_name_the_entry_by_its_position_from_one() -> None:
    """Operators fix the entry the message names; position 1 is the first entry."""
    good = f"k1:{base64.urlsafe_b64encode(KEK).decode()}"
    with pytest.raises(ConfigurationError, match="entry 1:"):
        KekRing.from_config("no-colon")
    with pytest.raises(InvalidKeyError, match="entry 2:"):
        KekRing.from_config(f"{good},k2:AAAA")


def test_kek_config_splits_each_entry_at_its_first_colon() -> None:
    """A colon is never part of a KEK id; a second one makes the key invalid."""
    with pytest.raises(InvalidKeyError):
        KekRing.from_config(f"k1:{base64.urlsafe_b64encode(KEK).decode()[:-1]}:=")


@pytest.mark.parametrize("padding", ["", "=", "=="])
def test_kek_config_reads_a_key_with_or_without_padding(padding: str) -> None:
    """Keys pasted from base64 tools come padded; only '=' may be stripped, nothing else."""
    key = bytes(range(1, 33))
    text = base64.urlsafe_b64encode(key).decode().rstrip("=") + padding
    assert key == KekRing.from_config(f"k1:{text}").primary.key


def test_kek_config_strips_only_padding_from_a_key() -> None:
    """A valid key with a stray character after it is a typo, refused, not trimmed."""
    text = base64.urlsafe_b64encode(KEK).decode().rstrip("=")
    with pytest.raises(InvalidKeyError):
        KekRing.from_config(f"k1:{text}X")
