"""The pytest plugin (entry point ``pytest11``: ``pip install sjti`` registers it).

Fixtures, all function-scoped, all named ``sjti_*``, each overridable by a fixture of the
same name in your ``conftest.py``:

==================== ===================================================================
``sjti_now``         the start time, an int (default: now)
``sjti_clock``       a :class:`FrozenClock` at ``sjti_now``; ``.advance(s)`` moves it
``sjti_algorithm``   the application key's algorithm (default ``"EdDSA"``)
``sjti_keys``        a :class:`~sjti.KeySet` with one signing key of that algorithm
``sjti_iss``         the ``iss`` the app expects (``"https://auth.sjti.test"``)
``sjti_aud``         the ``aud`` the app expects (``"https://api.sjti.test"``)
``sjti_policy``      ``ClaimsPolicy(issuer=sjti_iss, audience=sjti_aud)``
``sjti_boundary``    a :class:`~sjti.BoundaryVerifier` on the keys, policy and clock
``sjti_verifier``    a :class:`~sjti.UserVerifier` over ``sjti_boundary``
``sjti_store``       a :class:`~sjti.stores.MemorySecretStore`
``sjti_issuer``      an :class:`~sjti.Issuer` with the keys, iss, aud and clock
``sjti_users``       a :class:`UserFactory`: ``create()``, ``token(user)``, ``revoke(user)``
``sjti_revoke``      ``revoke(user)``: every token of the user issued so far is refused
``sjti_delete_user`` ``delete(user_id)`` (for the in-memory store; ``None`` otherwise)
``sjti_devices``     a :class:`DeviceRevocation`: the store's device sign-out by default
``sjti_auth``        an :class:`~sjti.Auth` (what ``sjti.configure()`` returns) wired on the
                     kit's keys, store, iss, aud and clock: build your app from it
``sjti_kit``         all of the above in one :class:`Kit`, for the attack pack
``sjti_attack``      one case of the attack pack (a test using it runs once per case)
==================== ===================================================================

The marker ``@pytest.mark.sjti_attacks(layer="boundary")`` limits a test to the control
and the cases the application keys alone refuse (a gateway that is not revocation-aware).

This module imports only pytest at import time; everything else loads when a fixture
is first used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .. import Auth, BoundaryVerifier, ClaimsPolicy, Issuer, KeySet, SigningKey, UserVerifier
    from ..stores.base import RevocationResult, SecretStore
    from ._attacks import AttackCase
    from ._clock import FrozenClock
    from ._kit import DeviceRevocation, Kit, SjtiUser, UserFactory

__all__ = [
    "pytest_configure",
    "pytest_generate_tests",
    "sjti_algorithm",
    "sjti_attack",
    "sjti_aud",
    "sjti_auth",
    "sjti_boundary",
    "sjti_clock",
    "sjti_delete_user",
    "sjti_devices",
    "sjti_iss",
    "sjti_issuer",
    "sjti_keys",
    "sjti_kit",
    "sjti_now",
    "sjti_policy",
    "sjti_revoke",
    "sjti_store",
    "sjti_users",
    "sjti_verifier",
]

_MARKER = "sjti_attacks"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f'{_MARKER}(layer="all"): which cases of the sjti attack pack a test using the '
        'sjti_attack fixture runs: "all", or "boundary" for an endpoint that is not '
        "revocation-aware",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test that uses ``sjti_attack`` once per case, with the case's name as its id."""
    if "sjti_attack" not in metafunc.fixturenames:
        return
    from ._attacks import select_attacks

    marker = metafunc.definition.get_closest_marker(_MARKER)
    layer = "all"
    if marker is not None:
        from ..errors import ConfigurationError

        if marker.args or set(marker.kwargs) - {"layer"}:
            raise ConfigurationError(f'use @pytest.mark.{_MARKER}(layer="all" | "boundary")')
        layer = marker.kwargs.get("layer", "all")
    attacks = select_attacks(layer)
    metafunc.parametrize(
        "sjti_attack", attacks, ids=[attack.name for attack in attacks], indirect=True
    )


# -- time, keys, policy ---------------------------------------------------------------------


@pytest.fixture
def sjti_now() -> int:
    """The moment the test starts, in seconds since the epoch (override to pin it)."""
    return int(time.time())


@pytest.fixture
def sjti_clock(sjti_now: int) -> FrozenClock:
    """A clock that stands at ``sjti_now`` until the test calls ``advance``."""
    from ._clock import FrozenClock

    return FrozenClock(sjti_now)


@pytest.fixture
def sjti_algorithm() -> str:
    """The application key's algorithm (asymmetric by default, as a JWKS would publish)."""
    return "EdDSA"


@pytest.fixture
def sjti_keys(sjti_algorithm: str) -> KeySet:
    """The application key set: one signing key (kept per algorithm for the session)."""
    from .. import KeySet

    return KeySet(_app_key(sjti_algorithm))


_APP_KEYS: dict[str, SigningKey] = {}


def _app_key(alg: str) -> SigningKey:
    from .. import SigningKey

    key = _APP_KEYS.get(alg)
    if key is None:
        key = _APP_KEYS[alg] = SigningKey.generate(alg)
    return key


@pytest.fixture
def sjti_iss() -> str:
    """The ``iss`` the kit's tokens carry and the app must expect."""
    return "https://auth.sjti.test"


@pytest.fixture
def sjti_aud() -> str:
    """The ``aud`` the kit's tokens carry and the app must expect."""
    return "https://api.sjti.test"


@pytest.fixture
def sjti_policy(sjti_iss: str, sjti_aud: str) -> ClaimsPolicy:
    """The claims policy for the app's verifier."""
    from .. import ClaimsPolicy

    return ClaimsPolicy(issuer=sjti_iss, audience=sjti_aud)


@pytest.fixture
def sjti_boundary(
    sjti_keys: KeySet, sjti_policy: ClaimsPolicy, sjti_clock: FrozenClock
) -> BoundaryVerifier:
    """The boundary layer on the kit's keys, policy and clock."""
    from .. import BoundaryVerifier

    return BoundaryVerifier(sjti_keys, sjti_policy, clock=sjti_clock)


@pytest.fixture
def sjti_verifier(sjti_boundary: BoundaryVerifier) -> UserVerifier:
    """Both layers, over ``sjti_boundary``."""
    from .. import UserVerifier

    return UserVerifier(sjti_boundary)


# -- store, issuer, users -------------------------------------------------------------------


@pytest.fixture
def sjti_store() -> SecretStore:
    """An in-memory secret store: the app looks user keys up here."""
    from ..stores.memory import MemorySecretStore

    return MemorySecretStore()


@pytest.fixture
def sjti_issuer(sjti_keys: KeySet, sjti_iss: str, sjti_aud: str, sjti_clock: FrozenClock) -> Issuer:
    """Issues the kit's tokens with the app key, on the kit's clock."""
    from .. import Issuer

    return Issuer(sjti_keys, issuer=sjti_iss, audience=sjti_aud, clock=sjti_clock)


@pytest.fixture
def sjti_auth(
    sjti_algorithm: str,
    sjti_keys: KeySet,
    sjti_store: SecretStore,
    sjti_iss: str,
    sjti_aud: str,
    sjti_clock: FrozenClock,
) -> Iterator[Auth]:
    """What ``sjti.configure()`` gives an app, on the kit's own parts: an app built from it
    accepts the kit's tokens and sees the kit's revocations."""
    from .. import Settings, configure
    from ..errors import ConfigurationError
    from ..stores.memory import MemorySecretStore

    if not isinstance(sjti_store, MemorySecretStore):
        raise ConfigurationError("sjti_auth wires the in-memory store; override it for yours")
    settings = Settings(
        database_url="memory://", issuer=sjti_iss, audience=sjti_aud, alg=sjti_algorithm
    )
    with configure(settings, keys=sjti_keys, store=sjti_store, clock=sjti_clock) as auth:
        yield auth


@pytest.fixture
def sjti_delete_user(sjti_store: SecretStore) -> Callable[[str], None] | None:
    """How a user is deleted: the in-memory store's row is dropped; ``None`` for any
    other store (override with your app's delete to run the ``deleted-user`` case)."""
    from ..stores.memory import MemorySecretStore
    from ._kit import delete_from_memory_store

    if isinstance(sjti_store, MemorySecretStore):
        return delete_from_memory_store(sjti_store)
    return None


@pytest.fixture
def sjti_users(
    sjti_store: SecretStore,
    sjti_issuer: Issuer,
    sjti_delete_user: Callable[[str], None] | None,
) -> UserFactory:
    """Creates users in ``sjti_store`` and issues, revokes and deletes for them."""
    from ._kit import UserFactory

    return UserFactory(sjti_store, sjti_issuer, delete=sjti_delete_user)


@pytest.fixture
def sjti_revoke(sjti_users: UserFactory) -> Callable[[SjtiUser | str], RevocationResult]:
    """``sjti_revoke(user)``: a new key for the user; every earlier token is refused."""
    return sjti_users.revoke


@pytest.fixture
def sjti_devices(sjti_store: SecretStore, sjti_issuer: Issuer) -> DeviceRevocation | None:
    """How the app signs one device out: by default the store's own device tracking
    (``sign_in`` / ``revoke_device``; an app that looks keys up in ``sjti_store`` honours
    it), ``None`` for a store without it (the ``revoked-device`` case then skips). Override
    with your app's own sign-out, or with ``None`` if your app revokes per user only."""
    if not hasattr(sjti_store, "revoke_device"):
        return None
    from ._kit import StoreDevices

    return StoreDevices(sjti_store, sjti_issuer)


@pytest.fixture
def sjti_kit(
    sjti_clock: FrozenClock,
    sjti_keys: KeySet,
    sjti_policy: ClaimsPolicy,
    sjti_issuer: Issuer,
    sjti_users: UserFactory,
    sjti_devices: DeviceRevocation | None,
) -> Kit:
    """The fixtures above in one object, as the attack pack uses them."""
    from ._kit import Kit

    return Kit(sjti_clock, sjti_keys, sjti_policy, sjti_issuer, sjti_users, sjti_devices)


@pytest.fixture
def sjti_attack(request: pytest.FixtureRequest, sjti_kit: Kit) -> AttackCase:
    """One case of the attack pack: call ``sjti_attack.check(send)`` in the test."""
    from ._attacks import Attack, AttackCase

    attack = getattr(request, "param", None)
    if not isinstance(attack, Attack):
        from ..errors import ConfigurationError

        raise ConfigurationError("sjti_attack is parametrised by the sjti plugin only")
    reason = attack.unavailable(sjti_kit)
    if reason is not None:
        pytest.skip(reason)
    return AttackCase(attack, sjti_kit)
