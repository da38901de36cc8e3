"""The bench rows of per-device revocation (docs/design.md, "Per-device revocation").

* ``sjti.verify_full_device.HS256``: both layers with the user's key in hand, the key
  listing :data:`DEVICES` devices and the token naming one of them (the device check is
  a set lookup after the MAC).
* ``sjti.verify_full_cached_device.HS256``: the same, the key record (secret and device
  list, one entry) from a :class:`~sjti.cache.KeyCache` hit; the target holds it within
  1.2x of the key in hand, as for keys without devices.
* ``sjti.device_record_*``: the bytes one user costs with 1, 10 and 100 devices, in the
  database column and in each node's cache (measured on the encodings themselves).

Each timed row is checked like the others: it must return the token's claims and refuse
the token of a device that was signed out.
"""

from __future__ import annotations

import functools
from typing import Final

from .._core.binding import USER_KEY_SIZE, UserKey, new_device_id
from ..cache import CachedKeys, KeyCache
from ..stores._devices import column_text
from ..stores.memory import MemorySecretStore
from ..tokens import BoundaryVerifier, UserVerifier
from ._cases import EXTRA_CLAIMS, SUBJECT, Case, Fixture, _rejects, expect_claims
from ._result import Measure

__all__ = ["DEVICES", "device_cases", "device_measures"]

DEVICES: Final = 10  # devices listed on the user's key in the timed rows
DEVICE_KEY: Final = "sjti.verify_full_device.HS256"
DEVICE_CACHED: Final = "sjti.verify_full_cached_device.HS256"
_SECTION: Final = "per-device revocation"


def device_cases(fx: Fixture) -> list[Case]:
    """The two timed device rows, on the fixture's application key and policy."""
    verifier = UserVerifier(BoundaryVerifier(fx.hs_key, fx.policy))
    store = MemorySecretStore()
    cache = KeyCache(trusted=True)
    store.add_listener(cache.invalidate)
    cached = CachedKeys(store, cache=cache)
    signed = [store.sign_in(SUBJECT, max_devices=DEVICES) for _ in range(DEVICES)]
    key = signed[-1].key
    sid = signed[-1].sid
    token = fx.issuer.issue(SUBJECT, key, claims={**EXTRA_CLAIMS, "sid": sid})
    gone = signed[0].sid
    gone_token = fx.issuer.issue(SUBJECT, key, claims={**EXTRA_CLAIMS, "sid": gone})
    store.revoke_device(SUBJECT, gone)
    key = store.load(SUBJECT) or key
    claims = verifier.verify(token, key)
    refused = (("the token of a device that was signed out", gone_token),)
    cached.get(SUBJECT)  # warm: the timed calls are hits
    in_hand = functools.partial(_verify_in_hand, verifier, key)
    through_cache = functools.partial(verifier.verify_with, lookup=cached.get)
    return [
        Case(
            DEVICE_KEY,
            "sjti",
            "verify",
            functools.partial(in_hand, token),
            expect_claims(claims),
            _rejects(in_hand, refused),
        ),
        Case(
            DEVICE_CACHED,
            "sjti",
            "verify",
            functools.partial(through_cache, token),
            expect_claims(claims),
            _rejects(through_cache, refused),
        ),
    ]


def device_measures() -> tuple[Measure, ...]:
    """Bytes per user record with 1, 10 and 100 devices: the column, the cache entry."""
    measures = []
    for count in (1, 10, 100):
        sids = [new_device_id() for _ in range(count)]
        record = UserKey(bytes(USER_KEY_SIZE), sids).record()
        measures += [
            Measure(
                f"sjti.device_record_db_bytes_{count}",
                float(len(column_text(sids).encode("ascii"))),
                "bytes",
                f"{count} device(s): the device list in the users row (beside the key)",
                _SECTION,
            ),
            Measure(
                f"sjti.device_record_cache_bytes_{count}",
                float(len(record)),
                "bytes",
                f"{count} device(s): the key record a node caches (secret + devices)",
                _SECTION,
            ),
        ]
    return tuple(measures)


def _verify_in_hand(verifier: UserVerifier, key: UserKey, token: str) -> object:
    return verifier.verify(token, key)
