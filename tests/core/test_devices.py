"""Per-device revocation in the core: the key record lists the user's devices; a token is
accepted only from a listed device, and the sid it names is bound by the user's MAC."""

from __future__ import annotations

import pytest

from sjti import ConfigurationError, Issuer, RevokedTokenError, SigningKey, UserKey, UserVerifier
from sjti._core.binding import (
    DEVICE_ID_SIZE,
    device_id_bytes,
    device_ids,
    devices_record,
    is_record,
    new_device_id,
)
from sjti.cache import CachedKeys, KeyCache
from sjti.testing._forge import resign

SECRET = bytes(range(32))


def test_a_key_with_devices_accepts_only_listed_devices(
    issuer: Issuer, verifier: UserVerifier
) -> None:
    phone, laptop, gone = new_device_id(), new_device_id(), new_device_id()
    key = UserKey(SECRET, [phone, laptop])
    for sid in (phone, laptop):
        token = issuer.issue("alice", key, claims={"sid": sid})
        assert verifier.verify(token, key)["sid"] == sid
    for claims in ({"sid": gone}, {}, {"sid": 7}):
        token = issuer.issue("alice", key, claims=claims)
        with pytest.raises(RevokedTokenError):
            verifier.verify(token, key)


def test_signing_out_one_device_leaves_the_others(issuer: Issuer, verifier: UserVerifier) -> None:
    phone, laptop = new_device_id(), new_device_id()
    before = UserKey(SECRET, [phone, laptop])
    phone_token = issuer.issue("alice", before, claims={"sid": phone})
    laptop_token = issuer.issue("alice", before, claims={"sid": laptop})
    after = UserKey(SECRET, [laptop])  # same secret: the other devices keep their tokens
    with pytest.raises(RevokedTokenError):
        verifier.verify(phone_token, after)
    assert verifier.verify(laptop_token, after)["sid"] == laptop


def test_without_device_tracking_any_sid_is_accepted(
    issuer: Issuer, verifier: UserVerifier
) -> None:
    key = UserKey(SECRET)
    assert key.devices is None
    token = issuer.issue("alice", key, claims={"sid": new_device_id()})
    assert verifier.verify(token, key)["sub"] == "alice"


def test_the_application_key_alone_cannot_move_a_token_to_another_device(
    issuer: Issuer, verifier: UserVerifier, hs_key: SigningKey
) -> None:
    """The sid is bound: re-signing a signed-out device's token with a listed sid (the
    application key is all a leak of it gives) fails the user's MAC."""
    signed_out, listed = new_device_id(), new_device_id()
    key = UserKey(SECRET, [listed])
    token = issuer.issue("alice", UserKey(SECRET, [signed_out, listed]), claims={"sid": signed_out})
    header, payload, _ = token.split(".")
    claims = {**verifier.boundary.verify(token), "sid": listed}  # sjti kept as it was
    assert payload
    moved = resign(header.encode("ascii"), claims, hs_key)
    with pytest.raises(RevokedTokenError):
        verifier.verify(moved, key)


def test_records_round_trip_in_sign_in_order() -> None:
    sids = [new_device_id() for _ in range(3)]
    record = devices_record(SECRET, sids)
    assert len(record) == 32 + 1 + 3 * DEVICE_ID_SIZE
    assert device_ids(record) == sids
    key = UserKey.from_record(record)
    assert key.devices == frozenset(sids)
    assert UserKey.from_record(key.record()).devices == key.devices
    assert UserKey.from_record(SECRET).devices is None
    assert device_ids(devices_record(SECRET, [])) == []
    assert UserKey.from_record(devices_record(SECRET, [])).devices == frozenset()


@pytest.mark.parametrize(
    "value",
    [SECRET[:31], SECRET + b"\x02", SECRET + b"\x01" + b"x" * 15, "a" * 32, None],
)
def test_malformed_records_are_not_records(value: object) -> None:
    assert not is_record(value)


def test_device_ids_are_sixteen_bytes_of_base64url() -> None:
    assert len(device_id_bytes(new_device_id())) == DEVICE_ID_SIZE
    for bad in ("short", "A" * 23, "+" * 22, ""):
        with pytest.raises(ConfigurationError, match="a device id is 16 bytes"):
            device_id_bytes(bad)
    with pytest.raises(ConfigurationError, match="not a user key record"):
        device_ids(SECRET)


def test_the_cache_serves_the_device_list_with_the_key(
    issuer: Issuer, verifier: UserVerifier
) -> None:
    """One cache entry holds the secret and the devices; a device sign-out is a new record,
    so the next lookup after the invalidation refuses that device."""
    phone, laptop = new_device_id(), new_device_id()
    records = {"alice": devices_record(SECRET, [phone, laptop])}

    class Source:
        def load_secret(self, user_id: str) -> bytes | None:
            return records.get(user_id)

    keys = CachedKeys(Source(), cache=KeyCache(trusted=True))
    token = issuer.issue("alice", keys.get("alice"), claims={"sid": phone})
    assert verifier.verify_with(token, keys.get)["sid"] == phone
    records["alice"] = devices_record(SECRET, [laptop])
    keys.cache.invalidate(["alice"])
    with pytest.raises(RevokedTokenError):
        verifier.verify_with(token, keys.get)


def test_a_source_returning_junk_is_a_configuration_error() -> None:
    class Source:
        def load_secret(self, user_id: str) -> bytes | None:
            return SECRET + b"\x07"

    with pytest.raises(ConfigurationError, match="key record"):
        CachedKeys(Source()).get("alice")
