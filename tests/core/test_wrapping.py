"""Tests for sjti._core.wrapping: user keys sealed at rest under a KEK ring."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sjti._core.wrapping import (
    USER_KEY_SIZE,
    Kek,
    KekRing,
    WrappedSecret,
    generate_user_key,
)
from sjti.errors import ConfigurationError, UnwrapError

# Fixed test KEKs; never used outside these tests.
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))
KEY_3 = bytes(range(200, 232))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.fixture
def ring() -> KekRing:
    return KekRing([Kek("k1", KEY_1)])


@pytest.fixture
def user_key() -> bytes:
    return generate_user_key()


def test_generate_user_key_is_random_and_sized() -> None:
    """User keys must be full-size and not repeat, or revoking one user could hit another."""
    keys = {generate_user_key() for _ in range(16)}
    assert len(keys) == 16
    assert {len(k) for k in keys} == {USER_KEY_SIZE}


def test_wrap_unwrap_roundtrip(ring: KekRing, user_key: bytes) -> None:
    """The user key read back from storage must be the one that was stored."""
    wrapped = ring.wrap("alice", user_key)
    assert wrapped.kek_id == "k1"
    assert user_key == ring.unwrap("alice", wrapped)


def test_wrap_uses_fresh_nonce(ring: KekRing, user_key: bytes) -> None:
    """Reusing a GCM nonce under one KEK would leak plaintext XORs and the auth key."""
    blobs = {ring.wrap("alice", user_key).blob for _ in range(8)}
    assert len(blobs) == 8
    assert len({blob[:12] for blob in blobs}) == 8


def test_unwrap_rejects_secret_copied_to_another_user(ring: KekRing, user_key: bytes) -> None:
    """Copying a wrapped secret onto another user's row must not let it open there."""
    wrapped = ring.wrap("alice", user_key)
    with pytest.raises(UnwrapError):
        ring.unwrap("bob", wrapped)


@pytest.mark.parametrize(
    ("owner", "other"),
    [("a\x00b", "a"), ("a", "a\x00"), ("a\x00\x00\x00\x01b", "a"), ("é", "e\u0301")],
)
def test_user_id_binding_is_unambiguous(
    ring: KekRing, user_key: bytes, owner: str, other: str
) -> None:
    """User ids that share a prefix or differ only by NUL or normalisation stay distinct."""
    wrapped = ring.wrap(owner, user_key)
    assert user_key == ring.unwrap(owner, wrapped)
    with pytest.raises(UnwrapError):
        ring.unwrap(other, wrapped)


def test_unwrap_rejects_secret_relabelled_to_another_kek_id(user_key: bytes) -> None:
    """The KEK id is bound too: relabelling a blob to a kid with the same key bytes fails."""
    ring = KekRing([Kek("k1", KEY_1), Kek("k1b", KEY_1)])
    wrapped = ring.wrap("alice", user_key)
    relabelled = WrappedSecret(kek_id="k1b", blob=wrapped.blob)
    with pytest.raises(UnwrapError):
        ring.unwrap("alice", relabelled)


def test_kek_id_and_user_id_boundary_is_unambiguous(user_key: bytes) -> None:
    """Moving characters between kid and user id ("k1"+"x" vs "k"+"1x") must not open."""
    ring = KekRing([Kek("k1", KEY_1), Kek("k", KEY_1)])
    wrapped = ring.wrap("x", user_key)
    shifted = WrappedSecret(kek_id="k", blob=wrapped.blob)
    with pytest.raises(UnwrapError):
        ring.unwrap("1x", shifted)


def test_unwrap_rejects_every_single_bit_flip(ring: KekRing, user_key: bytes) -> None:
    """Any corruption of the stored blob (nonce, ciphertext or tag) must fail closed."""
    wrapped = ring.wrap("alice", user_key)
    accepted = []
    for bit in range(len(wrapped.blob) * 8):
        tampered = bytearray(wrapped.blob)
        tampered[bit // 8] ^= 1 << (bit % 8)
        try:
            ring.unwrap("alice", WrappedSecret("k1", bytes(tampered)))
        except UnwrapError:
            continue
        accepted.append(bit)
    assert accepted == []


@pytest.mark.parametrize("keep", [0, 1, 12, 13, 43, 44, 59])
def test_unwrap_rejects_truncated_blob(ring: KekRing, user_key: bytes, keep: int) -> None:
    """A blob cut short by a bad column type or copy must fail closed, not raise oddly."""
    wrapped = ring.wrap("alice", user_key)
    with pytest.raises(UnwrapError):
        ring.unwrap("alice", WrappedSecret("k1", wrapped.blob[:keep]))


def test_unwrap_rejects_extended_blob(ring: KekRing, user_key: bytes) -> None:
    """Trailing bytes appended to a valid blob must not be ignored."""
    wrapped = ring.wrap("alice", user_key)
    with pytest.raises(UnwrapError):
        ring.unwrap("alice", WrappedSecret("k1", wrapped.blob + b"\x00"))


def test_unwrap_rejects_unknown_kek_id(ring: KekRing, user_key: bytes) -> None:
    """A secret under a KEK the ring no longer holds raises the same opaque error."""
    other = KekRing([Kek("gone", KEY_2)])
    wrapped = other.wrap("alice", user_key)
    with pytest.raises(UnwrapError):
        ring.unwrap("alice", wrapped)


def test_unwrap_rejects_wrong_key_under_same_kek_id(user_key: bytes) -> None:
    """A KEK replaced under the same id (misconfiguration) fails closed, not garbage out."""
    wrapped = KekRing([Kek("k1", KEY_1)]).wrap("alice", user_key)
    with pytest.raises(UnwrapError):
        KekRing([Kek("k1", KEY_2)]).unwrap("alice", wrapped)


def test_unwrap_error_is_opaque(ring: KekRing, user_key: bytes) -> None:
    """Every failure reads the same and chains nothing, so errors are no oracle."""
    wrapped = ring.wrap("alice", user_key)
    failures = [
        ("bob", wrapped),
        ("alice", WrappedSecret("k1", wrapped.blob[:-1])),
        ("alice", WrappedSecret("zz", wrapped.blob)),
    ]
    messages = set()
    for user_id, candidate in failures:
        with pytest.raises(UnwrapError) as info:
            ring.unwrap(user_id, candidate)
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__ or info.value.__context__ is None
        messages.add(str(info.value))
    assert messages == {"cannot unwrap secret"}


def test_rewrap_moves_to_new_primary_and_keeps_user_key(user_key: bytes) -> None:
    """KEK rotation must not change user keys, or every user would be logged out."""
    old_ring = KekRing([Kek("k1", KEY_1)])
    wrapped = old_ring.wrap("alice", user_key)
    new_ring = KekRing([Kek("k2", KEY_2), Kek("k1", KEY_1)])

    rewrapped = new_ring.rewrap("alice", wrapped)

    assert rewrapped.kek_id == "k2"
    assert user_key == new_ring.unwrap("alice", rewrapped)
    assert user_key == KekRing([Kek("k2", KEY_2)]).unwrap("alice", rewrapped)
    with pytest.raises(UnwrapError):
        old_ring.unwrap("alice", rewrapped)


def test_rewrap_refuses_another_users_secret(user_key: bytes) -> None:
    """Rotation must not launder a secret copied from another user's row."""
    wrapped = KekRing([Kek("k1", KEY_1)]).wrap("alice", user_key)
    new_ring = KekRing([Kek("k2", KEY_2), Kek("k1", KEY_1)])
    with pytest.raises(UnwrapError):
        new_ring.rewrap("bob", wrapped)


def test_needs_rewrap_is_true_only_off_primary(user_key: bytes) -> None:
    """A rotation job uses this to find the rows still under an old KEK."""
    old = KekRing([Kek("k1", KEY_1)]).wrap("alice", user_key)
    ring = KekRing([Kek("k2", KEY_2), Kek("k1", KEY_1)])
    assert ring.needs_rewrap(old) is True
    assert ring.needs_rewrap(ring.rewrap("alice", old)) is False


def test_ring_primary_is_first(ring: KekRing) -> None:
    """The first KEK wraps; getting the order wrong would wrap under a retiring key."""
    two = KekRing([Kek("k2", KEY_2), Kek("k1", KEY_1)])
    assert two.primary.kid == "k2"
    assert two.wrap("alice", generate_user_key()).kek_id == "k2"
    assert ring.primary.kid == "k1"


@pytest.mark.parametrize("keks", [[], [Kek("k1", KEY_1), Kek("k1", KEY_2)]])
def test_ring_rejects_empty_or_duplicate_kids(keks: list[Kek]) -> None:
    """An empty ring cannot wrap; duplicate kids would make unwrap pick a key by luck."""
    with pytest.raises(ConfigurationError):
        KekRing(keks)


def test_config_roundtrip() -> None:
    """The env-var text must rebuild the same ring, primary first."""
    ring = KekRing([Kek("k2", KEY_2), Kek("k1", KEY_1), Kek.generate()])
    text = ring.to_config()
    again = KekRing.from_config(text)
    assert ring.keks == again.keks
    assert again.primary.kid == "k2"
    assert text == again.to_config()
    assert text.startswith(f"k2:{b64url(KEY_2)},k1:{b64url(KEY_1)},")


def test_from_config_accepts_padding_and_spaces() -> None:
    """Operators paste padded base64 and put spaces after commas; both should work."""
    padded = base64.urlsafe_b64encode(KEY_1).decode("ascii")
    ring = KekRing.from_config(f" k1:{padded} , k2:{b64url(KEY_2)}\n")
    assert ring.keks == (Kek("k1", KEY_1), Kek("k2", KEY_2))


SHORT_KEY = b64url(KEY_3[:31])
GOOD_KEY = b64url(KEY_3)
BAD_B64_KEY = GOOD_KEY[:-3] + "*" + GOOD_KEY[-2:]
STD_ALPHABET_KEY = base64.b64encode(b"\xfb\xff" * 16).decode("ascii")
LONG_KEY = b64url(KEY_3 + b"\x00")
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Same 32 bytes as GOOD_KEY but with non-zero padding bits: a second spelling of one key.
NONCANONICAL_KEY = GOOD_KEY[:-1] + _B64URL_ALPHABET[_B64URL_ALPHABET.index(GOOD_KEY[-1]) | 1]


@pytest.mark.parametrize(
    ("config", "secret_text"),
    [
        ("", None),
        ("   ", None),
        (f"k1:{SHORT_KEY}", SHORT_KEY),
        (f"k1:{LONG_KEY}", LONG_KEY),
        (f"k1:{BAD_B64_KEY}", BAD_B64_KEY),
        (f"k1:{STD_ALPHABET_KEY}", STD_ALPHABET_KEY),
        (f"k1:{NONCANONICAL_KEY}", NONCANONICAL_KEY),
        (f"k1:{GOOD_KEY},k1:{b64url(KEY_2)}", GOOD_KEY),
        (GOOD_KEY, GOOD_KEY),
        (f"{GOOD_KEY}:", GOOD_KEY),
        (f"k1:{GOOD_KEY},", GOOD_KEY),
        (f"k1:{GOOD_KEY},,k2:{b64url(KEY_2)}", GOOD_KEY),
        (f"bad kid:{GOOD_KEY}", GOOD_KEY),
    ],
)
def test_bad_config_raises_without_leaking_key(config: str, secret_text: str | None) -> None:
    """Config errors end up in logs; they must name the problem, never the key."""
    with pytest.raises(ConfigurationError) as info:
        KekRing.from_config(config)
    message = str(info.value)
    assert message
    if secret_text is not None:
        assert secret_text not in message
        assert secret_text[:8] not in message
    assert b64url(KEY_2) not in message
    assert info.value.__cause__ is None


@pytest.mark.parametrize("key", [b"", KEY_1[:31], KEY_1 + b"\x00"])
def test_kek_rejects_wrong_key_size(key: bytes) -> None:
    """AES-256 needs exactly 32 bytes; a shorter KEK is a silent downgrade."""
    with pytest.raises(ConfigurationError):
        Kek("k1", key)


@pytest.mark.parametrize("kid", ["", "a.b", "a:b", "a,b", "é", "x" * 65])
def test_kek_rejects_bad_kid(kid: str) -> None:
    """The kid is embedded in the text forms; '.', ':' or ',' would make them ambiguous."""
    with pytest.raises(ConfigurationError):
        Kek(kid, KEY_1)


def test_kek_generate_gives_valid_distinct_keks() -> None:
    """Generated KEKs must be full-size, random and carry an id the text forms accept."""
    first, second = Kek.generate(), Kek.generate()
    assert first.kid != second.kid
    assert first.key != second.key
    assert len(first.key) == 32
    assert Kek.generate("named").kid == "named"
    assert KekRing.from_config(KekRing([first]).to_config()).keks == (first,)


def test_kek_repr_hides_key_bytes() -> None:
    """Reprs reach logs and tracebacks; the KEK must not."""
    kek = Kek("k1", KEY_1)
    text = repr(kek)
    assert text == "Kek(kid='k1')"
    assert repr(KekRing([kek])) == "KekRing(kids=['k1'])"
    for leak in (repr(KEY_1), KEY_1.hex(), b64url(KEY_1), str(list(KEY_1))):
        assert leak not in text


def test_kek_is_immutable() -> None:
    """A KEK swapped in place would break every secret wrapped under it."""
    kek = Kek("k1", KEY_1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        kek.key = KEY_2  # type: ignore[misc]


def test_kek_equality_compares_kid_and_key() -> None:
    """Equality decides whether two configs name the same KEK."""
    assert Kek("k1", KEY_1) == Kek("k1", bytes(KEY_1))
    assert Kek("k1", KEY_1) != Kek("k1", KEY_2)
    assert Kek("k1", KEY_1) != Kek("k2", KEY_1)


@pytest.mark.parametrize(
    ("user_id", "key"),
    [
        ("alice", b"\x00" * 31),
        ("alice", b"\x00" * 33),
        ("", b"\x00" * 32),
        ("\ud800", b"\x00" * 32),
    ],
)
def test_wrap_rejects_misuse(ring: KekRing, user_id: str, key: bytes) -> None:
    """Wrapping a short key or binding to no user is a bug to stop at the source."""
    with pytest.raises(ConfigurationError):
        ring.wrap(user_id, key)


def test_wrapped_secret_text_roundtrip(ring: KekRing, user_key: bytes) -> None:
    """The one-column text form must parse back to the same secret, which still opens."""
    wrapped = ring.wrap("alice", user_key)
    text = wrapped.to_str()
    assert text.startswith("v1.k1.")
    assert "=" not in text
    parsed = WrappedSecret.from_str(text)
    assert wrapped == parsed
    assert user_key == ring.unwrap("alice", parsed)


BLOB_TEXT = b64url(bytes(range(60)))  # a well-formed 60-byte blob (12 nonce + 32 + 16 tag)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v1",
        "v1.k1",
        "v1.k1.",
        f"v2.k1.{BLOB_TEXT}",
        f"V1.k1.{BLOB_TEXT}",
        f"v1..{BLOB_TEXT}",
        f"v1.k 1.{BLOB_TEXT}",
        f"v1.{'x' * 65}.{BLOB_TEXT}",
        f"v1.k1.{BLOB_TEXT}=",
        f"v1.k1.{BLOB_TEXT}==",
        f"v1.k1.{BLOB_TEXT[:-1]}",  # 59 bytes and a dangling char
        f"v1.k1.{BLOB_TEXT[:-4]}",  # 57 bytes: truncated
        f"v1.k1.{BLOB_TEXT}AAAA",  # 63 bytes: extended
        f"v1.k1.{BLOB_TEXT[:-1]}!",
        f"v1.k1.{BLOB_TEXT[:-2]}+/",
        f"v1.k1.{BLOB_TEXT}.extra",
        f"v1.k1.{BLOB_TEXT}\n",
        f" v1.k1.{BLOB_TEXT}",
        "v1.k1." + "A" * 10_000,
        "\x00",
    ],
)
def test_from_str_rejects_garbage(text: str) -> None:
    """Garbage in the column must raise the opaque error, never ValueError or binascii.Error."""
    assert WrappedSecret.from_str(f"v1.k1.{BLOB_TEXT}").blob == bytes(range(60))
    with pytest.raises(UnwrapError):
        WrappedSecret.from_str(text)


@given(blob=st.binary(max_size=200), kek_id=st.sampled_from(["k1", "k2", "zz"]))
def test_random_blob_only_raises_unwrap_error(blob: bytes, kek_id: str) -> None:
    """Whatever bytes sit in the column, unwrap either fails opaquely or (never) succeeds."""
    ring = KekRing([Kek("k1", KEY_1), Kek("k2", KEY_2)])
    with pytest.raises(UnwrapError):
        ring.unwrap("alice", WrappedSecret(kek_id, blob))


@given(text=st.text(max_size=200))
def test_random_text_only_raises_unwrap_error(text: str) -> None:
    """Parsing then unwrapping arbitrary column text fails only with UnwrapError."""
    ring = KekRing([Kek("k1", KEY_1)])
    with pytest.raises(UnwrapError):
        ring.unwrap("alice", WrappedSecret.from_str(text))


@given(user_id=st.text(st.characters(codec="utf-8"), min_size=1), data=st.data())
def test_any_user_id_roundtrips_and_binds(user_id: str, data: st.DataObject) -> None:
    """Every UTF-8 user id roundtrips, and no other user id opens its secret."""
    ring = KekRing([Kek("k1", KEY_1)])
    key = generate_user_key()
    wrapped = ring.wrap(user_id, key)
    assert key == ring.unwrap(user_id, wrapped)
    other = data.draw(st.text(min_size=1).filter(lambda s: s != user_id))
    with pytest.raises(UnwrapError):
        ring.unwrap(other, wrapped)


def test_database_dump_alone_does_not_reveal_user_keys() -> None:
    """An attacker holding only the DB (to_str outputs), without the KEK, must not see keys."""
    ring = KekRing([Kek("k1", KEY_1)])
    users = {f"user-{i}": generate_user_key() for i in range(50)}
    dump = "\n".join(ring.wrap(uid, key).to_str() for uid, key in users.items())
    dump_bytes = dump.encode("ascii")
    for key in [*users.values(), KEY_1]:
        padded = base64.urlsafe_b64encode(key).decode("ascii")
        assert key not in dump_bytes
        assert b64url(key) not in dump
        assert padded not in dump
        assert base64.b64encode(key).decode("ascii") not in dump
        assert key.hex() not in dump
    # And the dump is still enough, with the KEK, to recover every key.
    recovered = {
        uid: ring.unwrap(uid, WrappedSecret.from_str(line))
        for uid, line in zip(users, dump.splitlines(), strict=True)
    }
    assert users == recovered
