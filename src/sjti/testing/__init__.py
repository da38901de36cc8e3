"""Test helpers for apps that use sjti, and a pytest plugin with an attack pack.

``pip install sjti`` registers the plugin (:mod:`sjti.testing.plugin`, entry point
``pytest11``): fixtures named ``sjti_*`` (a frozen clock, the application keys, an
in-memory store, an issuer, a user factory, a revoke helper) and ``sjti_attack``, which
runs a test once per attack, each reported under the attack's name::

    def test_me_refuses_every_attack(sjti_attack, client):
        sjti_attack.check(lambda token: client.get("/me", headers=bearer(token)))

The app under test is built from the same fixtures (``sjti_verifier`` or
``sjti_keys``/``sjti_policy``, and ``sjti_store``); docs/testing.md shows the wiring for
FastAPI, Flask, Django and plain httpx.

Importing it loads no framework, no store and not pytest: the demo uses
:class:`FrozenClock` in production installs.
"""

from __future__ import annotations

from ._attacks import ATTACKS, DEFAULT_REFUSED, Attack, AttackCase, Layer, select_attacks
from ._clock import FrozenClock
from ._errors import (
    AttackAcceptedError,
    AttackError,
    ControlRefusedError,
    EndpointCrashedError,
    UnexpectedStatusError,
)
from ._kit import (
    DeviceRevocation,
    HasStatusCode,
    Kit,
    Send,
    SjtiUser,
    UserFactory,
    bearer,
    delete_from_memory_store,
)

__all__ = [
    "ATTACKS",
    "DEFAULT_REFUSED",
    "Attack",
    "AttackAcceptedError",
    "AttackCase",
    "AttackError",
    "ControlRefusedError",
    "DeviceRevocation",
    "EndpointCrashedError",
    "FrozenClock",
    "HasStatusCode",
    "Kit",
    "Layer",
    "Send",
    "SjtiUser",
    "UnexpectedStatusError",
    "UserFactory",
    "bearer",
    "delete_from_memory_store",
    "select_attacks",
]
