"""The attack pack: the standard ways to get a token past an endpoint, each with its control.

Every case first sends a *control*: a good token (or, for forgeries, the very same
re-signed token with nothing changed) that the endpoint must accept. Only then does it
send the attack, which differs from the control in one respect, and expects a refusal.
An endpoint that refuses everything therefore fails every case
(:class:`ControlRefusedError`) instead of passing them all.

=========================  ======  ==========================================================
case                       layer   the token sent
=========================  ======  ==========================================================
``good-token``             -       a fresh user's token; must be accepted
``expired``                bdry    ``exp`` 10 minutes ago (beyond any allowed leeway)
``not-yet-valid``          bdry    ``nbf`` 10 minutes ahead
``wrong-issuer``           bdry    ``iss`` of another issuer
``wrong-audience``         bdry    ``aud`` of another API
``alg-none``               bdry    unsigned (``alg: none``, ``None``, ``NONE``)
``hs256-with-public-key``  bdry    HMAC-signed with the app's *public* key as the secret
``unknown-kid``            bdry    signed by a key the app does not have
``tampered-signature``     bdry    one bit of the signature flipped
``app-key-stretched-exp``  user    ``exp`` moved 30 days on, re-signed with the app key
``app-key-added-claims``   user    ``roles``/``scope`` added, re-signed with the app key
``app-key-without-sjti``   user    ``sjti`` removed, re-signed with the app key
``other-users-key``        user    ``sjti`` made with another user's key
``revoked-user``           user    the control token, after the user was revoked
``revoked-device``         user    a device's token, after that device was signed out
``deleted-user``           user    the control token, after the user was deleted
=========================  ======  ==========================================================

Boundary cases (``bdry``) are refused by the application keys alone; the user cases need
the user layer, so a gateway that only checks signatures fails them by design (mark its
test ``@pytest.mark.sjti_attacks(layer="boundary")``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

from .._core.binding import SJTI_CLAIM
from .._core.keys import SigningKey
from ..errors import ConfigurationError, TokenError
from . import _forge as forge
from ._errors import (
    AttackAcceptedError,
    ControlRefusedError,
    EndpointCrashedError,
    UnexpectedStatusError,
)
from ._kit import Kit, Send, SjtiUser

__all__ = ["ATTACKS", "DEFAULT_REFUSED", "Attack", "AttackCase", "Layer", "select_attacks"]

Layer = Literal["control", "boundary", "user"]
DEFAULT_REFUSED: Final = frozenset({401})
# Past any leeway a policy allows (ClaimsPolicy caps it at 300 s).
_MARGIN: Final = 600
_ATTACKER: Final = "https://attacker.invalid"


class _Probe:
    """Sends tokens for one case and turns each answer into a verdict."""

    def __init__(self, attack: str, send: Send, refused: frozenset[int]) -> None:
        self.attack = attack
        self._send = send
        self._refused = refused

    def _status(self, token: str) -> int | None:
        """The HTTP status, or ``None`` when ``send`` refused by raising a TokenError."""
        try:
            answer = self._send(token)
        except TokenError:
            return None
        except Exception as exc:
            raise EndpointCrashedError(
                self.attack, None, f"send raised {type(exc).__name__}: a crash is a 500"
            ) from exc
        status = answer if isinstance(answer, int) else getattr(answer, "status_code", None)
        if isinstance(status, bool) or not isinstance(status, int):
            raise ConfigurationError("send must return an HTTP status or a response")
        return status

    def accepted(self, token: str, what: str) -> None:
        status = self._status(token)
        if status is None or not 200 <= status < 300:
            shown = "a TokenError" if status is None else f"HTTP {status}"
            raise ControlRefusedError(
                self.attack,
                status,
                f"{what} was refused ({shown}): the endpoint must accept a good token, or "
                "refusing the attack proves nothing. Build the app from the sjti_* fixtures "
                "(keys, store, clock, iss/aud), and pass refused= if it answers other "
                "statuses.",
            )

    def refused(self, token: str, what: str) -> None:
        status = self._status(token)
        if status is None or status in self._refused:
            return
        if 200 <= status < 300:
            raise AttackAcceptedError(
                self.attack, status, f"the endpoint accepted {what} (HTTP {status})"
            )
        raise UnexpectedStatusError(
            self.attack,
            status,
            f"the endpoint answered HTTP {status} to {what}; a refusal is one of "
            f"{sorted(self._refused)}",
        )


Play = Callable[[Kit, _Probe], None]


@dataclass(frozen=True, slots=True)
class Attack:
    """One case of the pack: its ``name`` (the pytest id), its ``layer`` and what it sends."""

    name: str
    layer: Layer
    summary: str
    play: Play
    requires: Callable[[Kit], str | None] = lambda kit: None

    def unavailable(self, kit: Kit) -> str | None:
        """Why this case cannot run against ``kit`` (a skip reason), or ``None``."""
        return self.requires(kit)


@dataclass(frozen=True, slots=True)
class AttackCase:
    """An :class:`Attack` bound to the test's kit: the ``sjti_attack`` fixture's value."""

    attack: Attack
    kit: Kit

    @property
    def name(self) -> str:
        return self.attack.name

    @property
    def layer(self) -> Layer:
        return self.attack.layer

    def check(self, send: Send, *, refused: Collection[int] = DEFAULT_REFUSED) -> None:
        """Run the case against ``send``; raise an :class:`AttackError` if it fails.

        ``refused``: the statuses that count as a refusal (default 401, RFC 6750); a 2xx
        is acceptance; anything else is :class:`UnexpectedStatusError`.
        """
        statuses = frozenset(refused)
        if not statuses or any(
            isinstance(s, bool) or not isinstance(s, int) or 200 <= s < 300 for s in statuses
        ):
            raise ConfigurationError("refused must be non-2xx HTTP statuses")
        reason = self.attack.unavailable(self.kit)
        if reason is not None:
            import pytest

            pytest.skip(reason)
        self.attack.play(self.kit, _Probe(self.name, send, statuses))


# -- the cases ------------------------------------------------------------------------------


def _control(kit: Kit, probe: _Probe, what: str = "the control token") -> tuple[SjtiUser, str]:
    """A new user and a good token of theirs, which the endpoint must accept."""
    user = kit.users.create()
    token = kit.users.token(user)
    probe.accepted(token, what)
    return user, token


def _good_token(kit: Kit, probe: _Probe) -> None:
    _control(kit, probe, "a good token")


def _forged(
    edit: Callable[[dict[str, Any], Kit], dict[str, Any]], what: str, *, reseal: bool
) -> Play:
    """Change the claims of a good token and re-sign them with the app key; ``reseal``
    recomputes ``sjti`` with the user's key too (so only the boundary can refuse)."""

    def play(kit: Kit, probe: _Probe) -> None:
        user = kit.users.create()
        parts = forge.split(kit.users.token(user))
        key = kit.users.key(user)

        def sign(claims: dict[str, Any]) -> str:
            sealed = forge.reseal(claims, key) if reseal else claims
            return forge.resign(parts.header_segment, sealed, kit.issuer.key)

        probe.accepted(sign(dict(parts.claims)), "the control (the same claims, re-signed)")
        probe.refused(sign(edit(dict(parts.claims), kit)), what)

    return play


def _expired(claims: dict[str, Any], kit: Kit) -> dict[str, Any]:
    shift = claims["exp"] - kit.clock() + _MARGIN  # exp ends up _MARGIN in the past
    moved = {**claims, "exp": claims["exp"] - shift, "iat": claims["iat"] - shift}
    if "nbf" in claims:
        moved["nbf"] = claims["nbf"] - shift
    return moved


def _not_yet_valid(claims: dict[str, Any], kit: Kit) -> dict[str, Any]:
    lifetime = claims["exp"] - claims["iat"]
    start = kit.clock() + _MARGIN
    return {**claims, "nbf": start, "exp": start + lifetime}


def _stretched(claims: dict[str, Any], kit: Kit) -> dict[str, Any]:
    return {**claims, "exp": claims["exp"] + 30 * 86_400}


def _added_claims(claims: dict[str, Any], kit: Kit) -> dict[str, Any]:
    return {**claims, "roles": ["admin"], "scope": "admin"}


def _without_sjti(claims: dict[str, Any], kit: Kit) -> dict[str, Any]:
    return {name: value for name, value in claims.items() if name != SJTI_CLAIM}


def _alg_none(kit: Kit, probe: _Probe) -> None:
    _, token = _control(kit, probe)
    parts = forge.split(token)
    for alg in ("none", "None", "NONE"):
        probe.refused(forge.alg_none(parts, alg), f"an unsigned token (alg {alg!r})")


def _asymmetric(kit: Kit) -> str | None:
    if kit.issuer.key.verifying_key.is_symmetric:
        return "the application key is symmetric (HMAC): it has no public key to confuse"
    return None


def _hs_with_public_key(kit: Kit, probe: _Probe) -> None:
    _, token = _control(kit, probe)
    parts = forge.split(token)
    for secret in forge.public_key_secrets(kit.issuer.key.verifying_key):
        probe.refused(
            forge.hmac_with_public_key(parts, secret), "a token HMAC-signed with the public key"
        )


_ATTACKER_KEYS: dict[str, SigningKey] = {}


def _attacker_key(alg: str) -> SigningKey:
    """A key of the app's algorithm the app does not hold (one per algorithm: RSA is slow)."""
    key = _ATTACKER_KEYS.get(alg)
    if key is None:
        key = _ATTACKER_KEYS[alg] = SigningKey.generate(alg, kid="sjti-testing-attacker")
    return key


def _unknown_kid(kit: Kit, probe: _Probe) -> None:
    _, token = _control(kit, probe)
    attacker = _attacker_key(kit.issuer.key.alg)
    if kit.keys.get(attacker.kid) is not None:
        raise ConfigurationError("sjti_keys holds the kid the pack uses for unknown keys")
    probe.refused(forge.signed_by(forge.split(token), attacker), "a token signed by another key")


def _tampered(kit: Kit, probe: _Probe) -> None:
    _, token = _control(kit, probe)
    probe.refused(forge.tamper_signature(token), "a token with a flipped signature bit")


def _other_users_key(kit: Kit, probe: _Probe) -> None:
    victim, attacker = kit.users.create(), kit.users.create()
    parts = forge.split(kit.users.token(victim))
    probe.accepted(forge.resign(parts.header_segment, parts.claims, kit.issuer.key), "control")
    claims = forge.reseal(parts.claims, kit.users.key(attacker))
    probe.refused(
        forge.resign(parts.header_segment, claims, kit.issuer.key),
        "a token for one user bound to another user's key",
    )


def _revoked_user(kit: Kit, probe: _Probe) -> None:
    user, token = _control(kit, probe, "the token before the revocation")
    kit.users.revoke(user)
    probe.refused(token, "a token issued before its user was revoked")


def _has_devices(kit: Kit) -> str | None:
    if kit.devices is None:
        return (
            "the app declares no per-device revocation: override the sjti_devices fixture "
            "with a DeviceRevocation to run this case"
        )
    return None


def _revoked_device(kit: Kit, probe: _Probe) -> None:
    devices = kit.devices
    if devices is None:
        raise ConfigurationError("revoked-device needs sjti_devices")
    user = kit.users.create()
    phone, laptop = devices.token(user, "phone"), devices.token(user, "laptop")
    probe.accepted(phone, "the phone's token before the sign-out")
    probe.accepted(laptop, "the laptop's token")
    devices.revoke(user, "phone")
    probe.refused(phone, "a token of a device that was signed out")
    probe.accepted(laptop, "the token of the device that stayed signed in")


def _can_delete(kit: Kit) -> str | None:
    if not kit.users.can_delete:
        return (
            "no way to delete a user: sjti_store is not the in-memory store; override "
            "sjti_delete_user to run this case"
        )
    return None


def _deleted_user(kit: Kit, probe: _Probe) -> None:
    user, token = _control(kit, probe, "the token before the deletion")
    kit.users.delete(user)
    probe.refused(token, "a token of a deleted user")


ATTACKS: Final[tuple[Attack, ...]] = (
    Attack("good-token", "control", "a fresh user's token is accepted", _good_token),
    Attack(
        "expired",
        "boundary",
        "exp is in the past",
        _forged(_expired, "a token whose exp has passed", reseal=True),
    ),
    Attack(
        "not-yet-valid",
        "boundary",
        "nbf is in the future",
        _forged(_not_yet_valid, "a token whose nbf is ahead", reseal=True),
    ),
    Attack(
        "wrong-issuer",
        "boundary",
        "iss names another issuer",
        _forged(lambda c, k: {**c, "iss": _ATTACKER}, "a token of another issuer", reseal=True),
    ),
    Attack(
        "wrong-audience",
        "boundary",
        "aud names another API",
        _forged(
            lambda c, k: {**c, "aud": _ATTACKER + "/api"}, "a token for another API", reseal=True
        ),
    ),
    Attack("alg-none", "boundary", "an unsigned token", _alg_none),
    Attack(
        "hs256-with-public-key",
        "boundary",
        "HMAC-signed with the app's public key as the secret",
        _hs_with_public_key,
        _asymmetric,
    ),
    Attack("unknown-kid", "boundary", "signed by a key the app lacks", _unknown_kid),
    Attack("tampered-signature", "boundary", "a signature bit flipped", _tampered),
    Attack(
        "app-key-stretched-exp",
        "user",
        "exp stretched and re-signed with the app key",
        _forged(_stretched, "a token whose exp was stretched with the app key", reseal=False),
    ),
    Attack(
        "app-key-added-claims",
        "user",
        "roles added and re-signed with the app key",
        _forged(_added_claims, "a token given roles with the app key", reseal=False),
    ),
    Attack(
        "app-key-without-sjti",
        "user",
        "sjti removed and re-signed with the app key",
        _forged(_without_sjti, "a token stripped of sjti with the app key", reseal=False),
    ),
    Attack("other-users-key", "user", "bound to another user's key", _other_users_key),
    Attack("revoked-user", "user", "the user was revoked", _revoked_user),
    Attack("revoked-device", "user", "the device was signed out", _revoked_device, _has_devices),
    Attack("deleted-user", "user", "the user was deleted", _deleted_user, _can_delete),
)

_LAYERS: Final = {
    "all": frozenset({"control", "boundary", "user"}),
    "boundary": frozenset({"control", "boundary"}),
}


def select_attacks(layer: str = "all") -> tuple[Attack, ...]:
    """The cases to run: ``"all"``, or ``"boundary"`` (the control and the cases the
    application keys alone refuse: for a gateway that is not revocation-aware)."""
    layers = _LAYERS.get(layer) if isinstance(layer, str) else None
    if layers is None:
        raise ConfigurationError('sjti_attacks layer must be "all" or "boundary"')
    return tuple(attack for attack in ATTACKS if attack.layer in layers)
