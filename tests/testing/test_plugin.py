"""The plugin's fixtures: what a user's test gets by installing sjti, and how they fit."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import entry_points

import pytest

from sjti import (
    BoundaryVerifier,
    ConfigurationError,
    Issuer,
    KeySet,
    RevokedTokenError,
    UserVerifier,
)
from sjti.stores import MemorySecretStore, RevocationResult
from sjti.testing import FrozenClock, SjtiUser, UserFactory
from sjti.testing import plugin as sjti_plugin


def test_the_plugin_is_registered_by_the_pytest11_entry_point() -> None:
    """``pip install sjti`` is all it takes: pytest finds the plugin through its metadata."""
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("sjti") == "sjti.testing.plugin"


def test_the_plugin_is_loaded_in_this_session(pytestconfig: pytest.Config) -> None:
    """The project's own suite runs with the plugin its users get."""
    assert pytestconfig.pluginmanager.get_plugin("sjti") is sjti_plugin


def test_loading_the_plugin_imports_only_its_own_modules() -> None:
    """Every pytest run of every user loads the plugin: it must not pull in a framework,
    a store or a database driver before a fixture asks for one."""
    code = (
        "import sys, pytest, sjti\n"
        "before = set(sys.modules)\n"
        "import sjti.testing.plugin\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [
        "sjti.testing",
        "sjti.testing._attacks",
        "sjti.testing._clock",
        "sjti.testing._errors",
        "sjti.testing._forge",
        "sjti.testing._kit",
        "sjti.testing.plugin",
    ]


def test_sjti_testing_imports_no_pytest() -> None:
    """The demo imports FrozenClock from here in installs without pytest."""
    code = "import sys, sjti.testing\nprint('pytest' in sys.modules)"
    out = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_clock_starts_now_frozen_and_drives_the_issuer(
    sjti_now: int, sjti_clock: FrozenClock, sjti_issuer: Issuer, sjti_users: UserFactory
) -> None:
    """Tokens start valid for an app on the system clock, and move only when told to."""
    assert abs(sjti_now - time.time()) < 60
    assert sjti_clock() == sjti_now
    alice = sjti_users.create("alice")
    assert sjti_issuer.claims_for("alice", sjti_users.key(alice))["iat"] == sjti_now
    sjti_clock.advance(120)
    assert sjti_issuer.claims_for("alice", sjti_users.key(alice))["iat"] == sjti_now + 120


def test_keys_policy_and_verifiers_agree_with_the_issuer(
    sjti_keys: KeySet,
    sjti_boundary: BoundaryVerifier,
    sjti_verifier: UserVerifier,
    sjti_users: UserFactory,
    sjti_iss: str,
    sjti_aud: str,
) -> None:
    """An app built from the fixtures accepts the kit's tokens: one asymmetric key, one policy."""
    assert [key.alg for key in sjti_keys] == ["EdDSA"]
    assert sjti_verifier.boundary is sjti_boundary
    alice = sjti_users.create("alice")
    claims = sjti_verifier.verify(sjti_users.token(alice), sjti_users.key(alice))
    assert (claims["iss"], claims["aud"], claims["sub"]) == (sjti_iss, sjti_aud, "alice")


def test_the_store_is_the_in_memory_store_and_users_land_in_it(
    sjti_store: MemorySecretStore, sjti_users: UserFactory
) -> None:
    """The app looks keys up in sjti_store; the factory writes there (ids user-1, user-2...)."""
    assert isinstance(sjti_store, MemorySecretStore)
    first, second = sjti_users.create(), sjti_users.create(tenant="acme")
    assert (first, second) == (SjtiUser("user-1"), SjtiUser("user-2"))
    assert sjti_store.load("user-1") is not None
    row = sjti_store.get_user("user-2")
    assert row is not None
    assert row.attributes == {"tenant": "acme"}


def test_revoke_refuses_every_earlier_token(
    sjti_users: UserFactory, sjti_verifier: UserVerifier, sjti_revoke: object
) -> None:
    """sjti_revoke(user) is the app's revocation: the next verification fails."""
    alice = sjti_users.create("alice")
    token = sjti_users.token(alice)
    result = sjti_revoke(alice)  # type: ignore[operator]
    assert isinstance(result, RevocationResult)
    assert result.user_ids == ("alice",)
    with pytest.raises(RevokedTokenError):
        sjti_verifier.verify(token, sjti_users.key(alice))
    sjti_verifier.verify(sjti_users.token(alice), sjti_users.key(alice))  # new tokens work


def test_delete_announces_then_forgets_the_user(
    sjti_users: UserFactory, sjti_store: MemorySecretStore
) -> None:
    """Caches hear of a deletion (as a revocation) and the store then has no key at all."""
    heard: list[object] = []
    sjti_store.add_listener(heard.append)
    alice = sjti_users.create("alice")
    sjti_users.delete(alice)
    assert heard == [("alice",)]
    assert sjti_store.load("alice") is None
    with pytest.raises(ConfigurationError):
        sjti_users.key(alice)


def test_the_factory_refuses_what_it_cannot_do(sjti_issuer: Issuer) -> None:
    """Bad ids, attributes on a store that keeps none, and deletion without a hook fail loudly."""

    class OtherStore:
        def __init__(self) -> None:
            self.inner = MemorySecretStore()

        def __getattr__(self, name: str) -> object:
            if name == "add_user":
                raise AttributeError(name)
            return getattr(self.inner, name)

    users = UserFactory(OtherStore(), sjti_issuer)  # type: ignore[arg-type]
    assert not users.can_delete
    with pytest.raises(ConfigurationError):
        users.create("")
    with pytest.raises(ConfigurationError):
        users.create("bob", tenant="acme")
    with pytest.raises(ConfigurationError):
        users.delete(users.create("bob"))
    with pytest.raises(ConfigurationError):
        users.token(42)  # type: ignore[arg-type]


def test_the_stores_device_sign_out_is_the_default(
    sjti_devices: object, sjti_store: object
) -> None:
    """The kit's store tracks devices, so the revoked-device case runs by default: an app
    that looks keys up in it must refuse a signed-out device."""
    from sjti.testing._kit import StoreDevices

    assert isinstance(sjti_devices, StoreDevices)
    assert hasattr(sjti_store, "revoke_device")
