"""The kit the plugin's fixtures hand to a test: users, their tokens, revocation, deletion.

Everything here works on the real objects an app verifies with (its key set, its secret
store, its clock): the app under test is wired to them, the kit issues and revokes
through them, and the attack pack forges from them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .._core.binding import UserKey
    from .._core.claims import ClaimsPolicy
    from .._core.keyset import KeySet
    from ..stores.base import RevocationResult, SecretStore
    from ..stores.memory import MemorySecretStore
    from ..tokens import Issuer
    from ._clock import FrozenClock

__all__ = [
    "DeviceRevocation",
    "HasStatusCode",
    "Kit",
    "Send",
    "SjtiUser",
    "UserFactory",
    "bearer",
    "delete_from_memory_store",
]


class HasStatusCode(Protocol):
    """A response of any test client: httpx, Starlette/FastAPI, Flask, Django."""

    @property
    def status_code(self) -> int: ...


Send = Callable[[str], "int | HasStatusCode"]
"""Sends one token to the endpoint under test; returns the HTTP status (or the response).

Raising :class:`~sjti.TokenError` counts as a refusal (for endpoints that are not HTTP:
a message consumer, a verifier called directly). Any other exception fails the case.
"""


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header that carries ``token`` (RFC 6750 §2.1)."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True, slots=True)
class SjtiUser:
    """A user the kit created: its ``id`` is the tokens' ``sub`` and the store's key."""

    id: str


class DeviceRevocation(Protocol):
    """How the app signs one device out (per-device revocation). Declaring it (the
    ``sjti_devices`` fixture) turns on the pack's ``revoked-device`` case."""

    def token(self, user: SjtiUser, device: str) -> str:
        """A good access token for ``user`` on ``device``."""
        ...

    def revoke(self, user: SjtiUser, device: str) -> None:
        """Sign ``device`` out: its tokens must be refused from now on, the user's other
        devices' tokens still accepted."""
        ...


class StoreDevices:
    """:class:`DeviceRevocation` through the store's own device tracking (``sign_in`` /
    ``revoke_device``): the default of ``sjti_devices`` when the store has it, so an app
    that looks keys up in the kit's store is held to per-device sign-out."""

    def __init__(self, store: Any, issuer: Issuer) -> None:
        self._store, self._issuer = store, issuer
        self._sids: dict[tuple[str, str], str] = {}

    def token(self, user: SjtiUser, device: str) -> str:
        signed_in = self._store.sign_in(user.id)
        self._sids[user.id, device] = signed_in.sid
        return self._issuer.issue(user.id, signed_in.key, claims={"sid": signed_in.sid})

    def revoke(self, user: SjtiUser, device: str) -> None:
        self._store.revoke_device(user.id, self._sids[user.id, device], reason="sjti.testing")


def delete_from_memory_store(store: MemorySecretStore) -> Callable[[str], None]:
    """Delete a user from a :class:`~sjti.stores.MemorySecretStore` the way an app's
    delete should: revoke (the store's listeners, i.e. caches, drop the key), then forget
    the secret, so the store answers ``None`` like a users table without the row."""

    def delete(user_id: str) -> None:
        store.revoke(user_id, reason="user deleted")
        row = store.get_user(user_id)
        if row is not None:
            row.wrapped = None

    return delete


class UserFactory:
    """Creates users in the store and issues their tokens (the ``sjti_users`` fixture).

    >>> alice = users.create("alice")                # doctest: +SKIP
    >>> token = users.token(alice, claims={"scope": "read"})  # doctest: +SKIP
    >>> users.revoke(alice)                           # doctest: +SKIP
    """

    def __init__(
        self,
        store: SecretStore,
        issuer: Issuer,
        *,
        delete: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self._delete = delete
        self._ids = itertools.count(1)

    @property
    def can_delete(self) -> bool:
        """Whether :meth:`delete` is wired (the ``sjti_delete_user`` fixture)."""
        return self._delete is not None

    def create(self, user_id: str | None = None, **attributes: object) -> SjtiUser:
        """A user with a fresh key; ``user_id`` defaults to ``user-1``, ``user-2``, ...

        ``attributes`` (tenant, role, created_at, ...) select the user in cohort
        revocations; only the in-memory store keeps them.
        """
        uid = user_id if user_id is not None else f"user-{next(self._ids)}"
        if not isinstance(uid, str) or not uid:
            raise ConfigurationError("user_id must be a non-empty string")
        if attributes:
            add_user = getattr(self.store, "add_user", None)
            if add_user is None:
                raise ConfigurationError("only the in-memory store keeps user attributes")
            add_user(uid, **attributes)
        self.store.ensure(uid)
        return SjtiUser(uid)

    def key(self, user: SjtiUser | str) -> UserKey:
        """The user's current key, read from the store."""
        uid = _id(user)
        key = self.store.load(uid)
        if key is None:
            raise ConfigurationError("the user has no key: create it first (or it was deleted)")
        return key

    def token(
        self,
        user: SjtiUser | str,
        *,
        claims: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        not_before: int | None = None,
    ) -> str:
        """A good access token for ``user``, bound to its current key."""
        return self.issuer.issue(
            _id(user), self.key(user), claims=claims, ttl=ttl, not_before=not_before
        )

    def revoke(self, user: SjtiUser | str) -> RevocationResult:
        """Revoke every token of ``user`` issued so far (a new key, announced)."""
        return self.store.revoke(_id(user), reason="sjti.testing")

    def delete(self, user: SjtiUser | str) -> None:
        """Delete ``user`` through the ``sjti_delete_user`` hook."""
        if self._delete is None:
            raise ConfigurationError("no way to delete a user: override sjti_delete_user")
        self._delete(_id(user))


def _id(user: SjtiUser | str) -> str:
    if isinstance(user, SjtiUser):
        return user.id
    if isinstance(user, str) and user:
        return user
    raise ConfigurationError("a user is an SjtiUser or a non-empty id")


@dataclass(frozen=True, slots=True)
class Kit:
    """Everything the attack pack needs, as the fixtures built it (``sjti_kit``)."""

    clock: FrozenClock
    keys: KeySet
    policy: ClaimsPolicy
    issuer: Issuer
    users: UserFactory
    devices: DeviceRevocation | None = None
