"""The split-token session strategy: opaque tokens, a hash at rest, strict parsing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sjti import (
    ConfigurationError,
    ExpiredTokenError,
    InvalidSignatureError,
    MalformedTokenError,
    RevokedTokenError,
    TokenError,
)
from sjti._core.codec import b64url_encode
from sjti._core.strategies import SessionKey, SessionRecord, SessionStrategy, get_strategy
from sjti._core.strategies.session import (
    SESSION_TOKEN_LENGTH,
    check,
    check_mac,
    mint,
    parse,
)

from .helpers import NOW_MS

SERVER_KEY_BYTES = bytes(range(32))
SERVER_KEY = SessionKey(SERVER_KEY_BYTES)
STRATEGY = SessionStrategy()
TTL_MS = 60_000


def _mac(key: bytes, session_id: bytes, secret: bytes) -> bytes:
    """The MAC as the format specifies it, computed independently of the module."""
    return hmac.new(key, b"sjti-session/v1\x00" + session_id + secret, hashlib.sha256).digest()


def _token(session_id: bytes, secret: bytes, mac: bytes) -> str:
    return ".".join(b64url_encode(part).decode() for part in (session_id, secret, mac))


def _minted() -> tuple[str, SessionRecord]:
    return mint(SERVER_KEY, user="alice", now_ms=NOW_MS, ttl_ms=TTL_MS)


FIXED = _minted()  # one token for the hypothesis tests, minted once


def test_minted_token_is_accepted() -> None:
    """The happy path, and the token matches the documented format byte for byte."""
    token, record = _minted()
    parsed = parse(token)
    assert len(token) == SESSION_TOKEN_LENGTH
    assert token == _token(
        parsed.id, parsed.secret, _mac(SERVER_KEY_BYTES, parsed.id, parsed.secret)
    )
    assert record.verifier_hash == hashlib.sha256(parsed.secret).digest()
    assert (record.user, record.expires_at_ms, record.revoked) == ("alice", NOW_MS + TTL_MS, False)
    check(token, record, SERVER_KEY, now_ms=NOW_MS + 1)


def test_state_key_is_the_record_key() -> None:
    """The port finds the record by the id the token carries."""
    token, record = STRATEGY.mint(SERVER_KEY, user="alice", now_ms=NOW_MS)
    assert STRATEGY.state_key(token) == record.key
    assert get_strategy("session").state_key(token) == record.key


def test_revoked_session_is_refused() -> None:
    """Logging out one device: its record flagged, its token refused."""
    token, record = _minted()
    with pytest.raises(RevokedTokenError):
        STRATEGY.check(token, STRATEGY.revoke(record, now_ms=NOW_MS), SERVER_KEY, now_ms=NOW_MS)


@pytest.mark.parametrize("record", [None, "other"])
def test_missing_or_foreign_record_is_refused(record: str | None) -> None:
    """A deleted session, or a port that fetched the wrong row, must not authenticate."""
    token, _ = _minted()
    stored = None if record is None else _minted()[1]
    with pytest.raises(RevokedTokenError):
        check(token, stored, SERVER_KEY, now_ms=NOW_MS)


def test_expired_session_is_refused_at_its_expiry() -> None:
    """The record's expiry is the session's lifetime, to the millisecond."""
    token, record = _minted()
    check(token, record, SERVER_KEY, now_ms=record.expires_at_ms - 1)
    with pytest.raises(ExpiredTokenError):
        check(token, record, SERVER_KEY, now_ms=record.expires_at_ms)


def test_wrong_server_key_is_refused_before_any_lookup() -> None:
    """The MAC layer drops tokens from another deployment without touching the store."""
    token, _ = _minted()
    with pytest.raises(InvalidSignatureError):
        check_mac(token, SessionKey.generate())


@pytest.mark.parametrize("part", [0, 1, 2], ids=["id", "secret", "mac"])
def test_tampered_part_is_refused(part: int) -> None:
    """Every part is under the MAC: change one bit of any of them and the token is dead."""
    token, record = _minted()
    parsed = parse(token)
    parts = [bytearray(parsed.id), bytearray(parsed.secret), bytearray(parsed.mac)]
    parts[part][0] ^= 1
    with pytest.raises(InvalidSignatureError):
        check(_token(*map(bytes, parts)), record, SERVER_KEY, now_ms=NOW_MS)


# --- a read-only copy of the database -------------------------------------------------------


@dataclass(frozen=True)
class RawSecretRecord:
    """DELIBERATELY WEAK, test-only: a store that keeps the raw secret, not its hash."""

    id: bytes
    verifier_hash: bytes  # holds the secret itself
    expires_at_ms: int


def _weak_mint() -> tuple[str, RawSecretRecord]:
    token, record = _minted()
    return token, RawSecretRecord(record.id, parse(token).secret, record.expires_at_ms)


def _weak_check(token: str, record: RawSecretRecord, key: SessionKey, *, now_ms: int) -> None:
    parsed = check_mac(token, key)
    if not hmac.compare_digest(parsed.secret, record.verifier_hash):
        raise RevokedTokenError()
    if now_ms >= record.expires_at_ms:
        raise ExpiredTokenError()


def _db_copy_authenticates(
    minted: tuple[str, SessionRecord | RawSecretRecord],
    verify: Callable[..., None],
    server_key: bytes,
) -> bool:
    """The attack, executed: build a token from the stored row, MAC it, present it."""
    _, row = minted
    forged = _token(row.id, row.verifier_hash, _mac(server_key, row.id, row.verifier_hash))
    try:
        verify(forged, row, SERVER_KEY, now_ms=NOW_MS)
    except TokenError:
        return False
    return True


def test_read_only_db_copy_authenticates_no_one_even_with_the_server_key() -> None:
    """The session design's claim to fame: the stored hash is not a usable secret."""
    assert _db_copy_authenticates(_minted(), check, SERVER_KEY_BYTES) is False


def test_read_only_db_copy_without_the_server_key_fails_the_mac() -> None:
    """Without the server key the forged token does not even reach the store."""
    _, record = _minted()
    guessed_key = bytes(32)
    mac = _mac(guessed_key, record.id, record.verifier_hash)
    forged = _token(record.id, record.verifier_hash, mac)
    with pytest.raises(InvalidSignatureError):
        check(forged, record, SERVER_KEY, now_ms=NOW_MS)


def test_a_store_keeping_the_raw_secret_lets_the_db_copy_in() -> None:
    """The same attack turns red on the weak store: the leak test can fail."""
    token, weak = _weak_mint()
    _weak_check(token, weak, SERVER_KEY, now_ms=NOW_MS)  # the weak design works for users...
    assert _db_copy_authenticates((token, weak), _weak_check, SERVER_KEY_BYTES) is True


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "a.b.c",
        "x" * SESSION_TOKEN_LENGTH,
        "é" * SESSION_TOKEN_LENGTH,
        "A" * 22 + "." + "A" * 43 + "." + "A" * 42 + "=",
        "A" * 23 + "." + "A" * 42 + "." + "A" * 43,
        "A" * 22 + "." + "A" * 43 + "+" + "A" * 43,
        "A" * 21 + "B" + "." + "A" * 43 + "." + "A" * 43,  # non-zero trailing bits
        "A" * 22 + "." + "A" * 43 + "." + "A" * 43 + "\n",
        b"\xff" * SESSION_TOKEN_LENGTH,
        None,
        12345,
    ],
)
def test_garbage_is_malformed(garbage: object) -> None:
    """Every bad input gets the typed error, before any MAC or lookup work."""
    with pytest.raises(MalformedTokenError):
        parse(garbage)  # type: ignore[arg-type]
    with pytest.raises(MalformedTokenError):
        check(garbage, None, SERVER_KEY, now_ms=NOW_MS)  # type: ignore[arg-type]


def test_a_jwt_is_not_a_session_token() -> None:
    """Token confusion: a JWT presented to the session check is malformed, not 'unknown'."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo"
    with pytest.raises(MalformedTokenError):
        parse(jwt)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_parser_raises_only_malformed(data: str | bytes) -> None:
    """Hostile input never crashes the parser with anything but the typed error."""
    try:
        parsed = parse(data)
    except MalformedTokenError:
        return
    assert (len(parsed.id), len(parsed.secret), len(parsed.mac)) == (16, 32, 32)


@given(position=st.integers(0, SESSION_TOKEN_LENGTH - 1), char=st.characters(codec="ascii"))
def test_any_one_character_edit_is_refused(position: int, char: str) -> None:
    """No single-character change to a valid token is accepted."""
    token, record = FIXED
    edited = token[:position] + char + token[position + 1 :]
    if edited == token:
        return
    with pytest.raises((MalformedTokenError, InvalidSignatureError)):
        check(edited, record, SERVER_KEY, now_ms=NOW_MS)


# --- secrets stay out of reprs and configuration is checked -----------------------------------


def test_reprs_show_no_secret() -> None:
    """Logged objects must not leak the server key, the secret or even the verifier."""
    token, record = _minted()
    parsed = parse(token)
    text = repr(SERVER_KEY) + repr(record) + repr(parsed)
    for secret in (SERVER_KEY_BYTES, parsed.secret, parsed.mac, record.verifier_hash):
        assert repr(secret) not in text
    assert "alice" in repr(record)


@pytest.mark.parametrize("key", [b"", b"k" * 31, "k" * 32])
def test_short_or_text_server_key_is_refused(key: object) -> None:
    """A guessable MAC key would let anyone pass the DB-free layer."""
    with pytest.raises(ConfigurationError):
        SessionKey(key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"user": ""}, {"now_ms": -1}, {"now_ms": 1.5}, {"ttl_ms": 0}, {"ttl_ms": True}],
)
def test_mint_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    """A session with no owner or no lifetime is a bug to catch at the issuer."""
    args: dict[str, object] = {"user": "alice", "now_ms": NOW_MS, "ttl_ms": TTL_MS} | kwargs
    with pytest.raises(ConfigurationError):
        mint(SERVER_KEY, **args)  # type: ignore[arg-type]


def test_revoking_returns_a_new_record() -> None:
    """Records are values: the port writes the revoked copy, nothing mutates in place."""
    _, record = _minted()
    assert record.revoke() == replace(record, revoked=True)
    assert record.revoked is False
