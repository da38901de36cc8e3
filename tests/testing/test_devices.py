"""The revoked-device case: skipped until the app declares per-device revocation, then strict.

The app here is a stand-in (per-device revocation is not in sjti yet): tokens carry a
``sid``, and the app refuses the devices it signed out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sjti import RevokedTokenError, UserVerifier
from sjti.cache import CachedKeys
from sjti.stores import MemorySecretStore
from sjti.testing import (
    ATTACKS,
    AttackAcceptedError,
    AttackCase,
    ControlRefusedError,
    Kit,
    SjtiUser,
    UserFactory,
)


class Devices:
    """A DeviceRevocation: ``sid`` per device; ``mode`` makes it right or wrong on purpose."""

    def __init__(self, users: UserFactory, mode: str = "device") -> None:
        self.users = users
        self.mode = mode
        self.signed_out: set[tuple[str, str]] = set()

    def token(self, user: SjtiUser, device: str) -> str:
        return self.users.token(user, claims={"sid": device})

    def revoke(self, user: SjtiUser, device: str) -> None:
        if self.mode == "device":
            self.signed_out.add((user.id, device))
        elif self.mode == "everyone":
            self.users.revoke(user)
        # mode "nothing": the sign-out is forgotten


def app(verifier: UserVerifier, store: MemorySecretStore, devices: Devices) -> Callable[[str], int]:
    keys = CachedKeys(store)

    def send(token: str) -> int:
        claims = verifier.verify_with(token, keys.get)
        if (claims["sub"], claims.get("sid")) in devices.signed_out:
            raise RevokedTokenError()
        return 200

    return send


@pytest.fixture
def sjti_devices(sjti_users: UserFactory) -> Devices:
    """Overrides the plugin's ``None``: this app declares per-device revocation."""
    return Devices(sjti_users)


def revoked_device(kit: Kit, devices: Devices) -> AttackCase:
    attack = next(a for a in ATTACKS if a.name == "revoked-device")
    return AttackCase(attack, dataclasses.replace(kit, devices=devices))


def test_declaring_devices_turns_the_case_on_and_a_correct_app_passes_the_pack(
    sjti_attack: AttackCase,
    sjti_kit: Kit,
    sjti_devices: Devices,
    sjti_verifier: UserVerifier,
    sjti_store: MemorySecretStore,
) -> None:
    """With sjti_devices overridden nothing skips, and signing one device out is enough."""
    assert all(attack.unavailable(sjti_kit) is None for attack in ATTACKS)
    sjti_attack.check(app(sjti_verifier, sjti_store, sjti_devices))


def test_a_sign_out_that_changes_nothing_is_an_accepted_attack(
    sjti_kit: Kit, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """The device's token still works after its sign-out: the hole the case exists for."""
    devices = Devices(sjti_kit.users, mode="nothing")
    with pytest.raises(AttackAcceptedError) as excinfo:
        revoked_device(sjti_kit, devices).check(app(sjti_verifier, sjti_store, devices))
    assert excinfo.value.attack == "revoked-device"


def test_signing_everyone_out_fails_the_device_that_stayed(
    sjti_kit: Kit, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """Per-device means the other devices stay signed in; logging everyone out is not it."""
    devices = Devices(sjti_kit.users, mode="everyone")
    with pytest.raises(ControlRefusedError, match="stayed signed in"):
        revoked_device(sjti_kit, devices).check(app(sjti_verifier, sjti_store, devices))
