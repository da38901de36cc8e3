"""Per-device revocation, the store contract: memory, SQLite and PostgreSQL, both layouts,
sync and async. The device list rides on the key record the lookup reads anyway."""

from __future__ import annotations

from typing import Any

import pytest

from sjti import ConfigurationError
from sjti._core.binding import check_sjti, compute_sjti, new_device_id
from sjti.errors import RevokedTokenError
from sjti.stores.base import UnknownUserError

from ._harness import Harness

pytestmark = pytest.mark.anyio


def token_claims(user_id: str, sid: str | None) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": user_id, "jti": new_device_id()}
    if sid is not None:
        claims["sid"] = sid
    return claims


def sealed(claims: dict[str, Any], key: Any) -> dict[str, Any]:
    return {**claims, "sjti": compute_sjti(claims, key)}


def accepted(claims: dict[str, Any], key: Any) -> bool:
    try:
        check_sjti(claims, key)
    except RevokedTokenError:
        return False
    return True


async def sign_in(harness: Harness, user_id: str, **options: Any) -> Any:
    if user_id not in getattr(harness, "_device_users", set()):
        harness.add_user(user_id)
        harness._device_users = {*getattr(harness, "_device_users", set()), user_id}  # type: ignore[attr-defined]
    return await harness.store.sign_in(user_id, **options)  # type: ignore[attr-defined]


async def test_a_sign_in_lists_the_device_on_the_record_the_lookup_reads(
    harness: Harness,
) -> None:
    phone = await sign_in(harness, "1")
    laptop = await sign_in(harness, "1")
    assert phone.sid != laptop.sid
    assert await harness.store.devices("1") == [phone.sid, laptop.sid]  # type: ignore[attr-defined]
    key = await harness.store.load("1")
    assert key is not None
    assert key.devices == {phone.sid, laptop.sid}
    assert laptop.key.devices == key.devices
    assert key.secret_bytes() == phone.key.secret_bytes()  # one key, several devices


async def test_signing_one_device_out_refuses_it_and_keeps_the_others(harness: Harness) -> None:
    phone = await sign_in(harness, "1")
    laptop = await sign_in(harness, "1")
    phone_token = sealed(token_claims("1", phone.sid), laptop.key)
    laptop_token = sealed(token_claims("1", laptop.sid), laptop.key)
    result = await harness.store.revoke_device(  # type: ignore[attr-defined]
        "1", phone.sid, actor="1", reason="lost phone"
    )
    assert (result.count, result.user_ids) == (1, ("1",))
    key = await harness.store.load("1")
    assert key is not None
    assert not accepted(phone_token, key)
    assert accepted(laptop_token, key)
    [record] = await harness.store.audit_log(limit=1)
    assert (record.kind, record.reason, record.detail) == (
        "device",
        "lost phone",
        f"user_id=1, sid={phone.sid}",
    )


async def test_signing_out_a_device_that_is_not_signed_in_changes_nothing(
    harness: Harness,
) -> None:
    await sign_in(harness, "1")
    before = await harness.store.audit_log()
    result = await harness.store.revoke_device("1", new_device_id())  # type: ignore[attr-defined]
    assert (result.count, result.audit_id, result.event_id) == (0, None, None)
    assert await harness.store.audit_log() == before
    nobody = await harness.store.revoke_device("nobody", new_device_id())  # type: ignore[attr-defined]
    assert nobody.count == 0


async def test_the_device_limit_signs_the_oldest_out_audited(harness: Harness) -> None:
    first = await sign_in(harness, "1", max_devices=2)
    second = await sign_in(harness, "1", max_devices=2)
    third = await sign_in(harness, "1", max_devices=2)
    assert third.signed_out == (first.sid,)
    assert await harness.store.devices("1") == [second.sid, third.sid]  # type: ignore[attr-defined]
    key = await harness.store.load("1")
    assert key is not None
    assert not accepted(sealed(token_claims("1", first.sid), key), key)
    assert accepted(sealed(token_claims("1", second.sid), key), key)


async def test_a_key_rotation_signs_every_device_out(harness: Harness) -> None:
    device = await sign_in(harness, "1")
    await harness.store.revoke("1", actor="admin", reason="incident")
    key = await harness.store.load("1")
    assert key is not None
    assert key.devices == frozenset()
    assert not accepted(sealed(token_claims("1", device.sid), key), key)
    again = await sign_in(harness, "1")
    assert again.key.devices == {again.sid}


async def test_users_without_a_device_sign_in_are_not_tracked(harness: Harness) -> None:
    harness.add_user("2")
    key = await harness.store.ensure("2")
    assert key.devices is None
    assert await harness.store.devices("2") is None  # type: ignore[attr-defined]
    assert accepted(sealed(token_claims("2", None), key), key)


async def test_bad_device_ids_and_limits_are_refused(harness: Harness) -> None:
    harness.add_user("1")
    with pytest.raises(ConfigurationError, match="a device id is 16 bytes"):
        await harness.store.sign_in("1", sid="not-a-device")  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="max_devices"):
        await harness.store.sign_in("1", max_devices=0)  # type: ignore[attr-defined]


async def test_listeners_hear_sign_ins_and_sign_outs(harness: Harness) -> None:
    """Both change the record a cache holds: both drop the user from caches."""
    heard: list[Any] = []
    harness.store.add_listener(heard.append)
    device = await sign_in(harness, "1")
    await harness.store.revoke_device("1", device.sid)  # type: ignore[attr-defined]
    assert [list(ids) for ids in heard] == [["1"], ["1"]]


async def test_only_the_app_table_refuses_a_user_it_does_not_have(harness: Harness) -> None:
    """sjti never creates the application's users; its own table and the in-memory store
    make a key row on first use, as ``ensure`` does."""
    if getattr(harness, "layout", None).__class__.__name__ == "AppUsersTable":
        with pytest.raises(UnknownUserError):
            await harness.store.sign_in("404")  # type: ignore[attr-defined]
        return
    signed_in = await harness.store.sign_in("404")  # type: ignore[attr-defined]
    assert signed_in.key.devices == {signed_in.sid}


async def test_forgetting_deleted_users_tells_caches_and_audits(harness: Harness) -> None:
    """An application deletes a user: forget() drops the user from every cache now."""
    harness.add_user("5")
    await harness.store.ensure("5")
    heard: list[Any] = []
    harness.store.add_listener(heard.append)
    result = await harness.store.forget(["5"], actor="app", reason="user deleted")  # type: ignore[attr-defined]
    assert (result.count, [list(ids) for ids in heard]) == (1, [["5"]])
    [record] = await harness.store.audit_log(limit=1)
    assert (record.kind, record.reason) == ("deleted", "user deleted")
