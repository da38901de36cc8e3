"""Adversarial review of per-device revocation (issue 10), on SQLite and PostgreSQL.

Races are forced, not hoped for: :func:`tests.server.test_races.rounds` pauses the grant
before each of its SQL statements in turn and runs the revocation there. The other tests
drive the state changes an attacker (or an unlucky client) can order at will.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi import HTTPException, Response

from sjti import RevokedTokenError
from sjti._core.codec import b64url_decode
from sjti.server.auth import verify_access_token
from sjti.server.db import families, refresh_tokens
from sjti.server.models import NewUser
from sjti.server.routes import auth, me
from sjti.server.services import Services
from sjti.server.sessions import SessionEnded, revoke_other_families_too
from sjti.server.settings import Settings
from sjti.stores._revocation import utc_now

from .server.test_races import PASSWORD, Pause, client_request, rounds, run


@pytest.fixture
def services(service_database_url: str, tmp_path: Path) -> Iterator[Services]:
    url = service_database_url
    built = Services.build(
        Settings(
            database_url=url,
            key_file=str(tmp_path / "keys.json"),
            max_devices=3,
            login_max_failures=10_000,
            login_max_failures_per_ip=10_000,
            registrations_per_ip=10_000,
        )
    )
    assert built.settings.session_granularity == "device"
    assert built.wait_ready(10)
    yield built
    built.close()


def register(services: Services, name: str) -> str:
    user = auth.register(NewUser(username=name, password=PASSWORD), services, client_request())
    return str(user.id)


def sign_in(services: Services, name: str, agent: str = "phone") -> dict[str, Any]:
    request = client_request()
    request.headers = {"user-agent": agent}
    return auth.password_grant(services, request, Response(), name, PASSWORD).model_dump()


def accepted(services: Services, tokens: dict[str, Any]) -> bool:
    try:
        verify_access_token(services, tokens["access_token"])
    except RevokedTokenError:
        return False
    return True


def refreshed(services: Services, tokens: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return auth.refresh_grant(services, Response(), tokens["refresh_token"]).model_dump()
    except HTTPException as refused:
        if refused.status_code != 400:
            raise
        return None


def sid_of(services: Services, tokens: dict[str, Any]) -> str:
    claims, _ = verify_access_token(services, tokens["access_token"])
    return str(claims["sid"])


def live_families(services: Services, user_id: str) -> set[str]:
    return {family.id for family in services.refresh.list_for(user_id)}


def assert_sessions_are_the_devices(services: Services, user_id: str) -> None:
    """Once a user's devices are tracked, a live refresh family is a listed device: a
    family the list dropped (sign-out, limit, key rotation) must have ended with it."""
    devices = services.store.devices(user_id)
    if devices is not None:
        assert live_families(services, user_id) <= set(devices)


# -- findings -------------------------------------------------------------------------------


def test_reuse_that_rotates_the_key_ends_every_session_it_signed_out(
    services: Services,
) -> None:
    """SJTI_REUSE_ROTATES_KEY under device granularity: the rotation empties the device
    list, so every device is signed out. Their refresh families must end in the same
    transaction: a family left live but unlisted is a signed-out device that a request
    started before the revocation (``sign out others`` / password change from that
    device, which re-lists the device it keeps) brings back after it returned."""
    services.settings = services.settings.replace(reuse_rotates_key=True)
    user_id = register(services, "ivy")
    phone, laptop = sign_in(services, "ivy"), sign_in(services, "ivy", "laptop")
    laptop_sid = sid_of(services, laptop)
    assert refreshed(services, phone) is not None
    assert refreshed(services, phone) is None  # reuse: the key rotates
    assert not accepted(services, laptop)
    assert services.store.devices(user_id) == []
    assert_sessions_are_the_devices(services, user_id)
    # The laptop's "sign out all other devices", verified before the reuse, runs now.
    with pytest.raises(SessionEnded):
        services.store.revoke(
            user_id, actor=user_id, reason="others", also=revoke_other_families_too(laptop_sid, [])
        )
    assert refreshed(services, laptop) is None


def test_a_session_from_before_tracking_ends_at_the_first_device_sign_in(
    services: Services,
) -> None:
    """The first device sign-in makes the user's older sessions unusable (their sid is not
    listed): they must end then, not stay live for ``sign out others`` to re-list."""
    user_id = register(services, "jan")
    device = services.settings
    services.settings = device.replace(session_granularity="user")
    old = sign_in(services, "jan", "old app")
    old_sid = sid_of(services, old)
    services.settings = device
    new = sign_in(services, "jan", "new app")
    assert accepted(services, new)
    assert not accepted(services, old)
    assert_sessions_are_the_devices(services, user_id)
    with pytest.raises(SessionEnded):
        services.store.revoke(
            user_id, actor=user_id, reason="others", also=revoke_other_families_too(old_sid, [])
        )
    assert refreshed(services, old) is None


def _legacy_session(services: Services, user_id: str) -> str:
    """A refresh family as the service made them before devices (``token_urlsafe(12)``:
    12 bytes, not a device id)."""
    family_id, now = secrets.token_urlsafe(12), utc_now()
    _, row = services.refresh._mint(user_id, family_id, now)
    with services.engine.begin() as conn:
        conn.execute(
            families.insert().values(
                id=family_id,
                user_id=user_id,
                created_at=now - timedelta(days=1),
                last_used_at=now,
                revoked=False,
            )
        )
        conn.execute(refresh_tokens.insert().values(**row))
    return family_id


def test_sign_out_others_never_lists_a_session_id_that_is_no_device_id(
    services: Services,
) -> None:
    """A legacy session racing the user's first device sign-in: its ``sign out others``
    must not write its (12-byte) family id into the device list, where every later key
    lookup and sign-in of the user fails on it (the user could never log in again)."""
    user_id = register(services, "kim")
    legacy = _legacy_session(services, user_id)
    sign_in(services, "kim", "new app")  # devices tracked from here
    with contextlib.suppress(SessionEnded):  # ended at the sign-in, or the id not listed
        services.store.revoke(
            user_id, actor=user_id, reason="others", also=revoke_other_families_too(legacy, [])
        )
    assert services.store.load(user_id) is not None  # the record still opens
    again = sign_in(services, "kim", "phone")
    assert accepted(services, again)


def test_switching_back_to_user_granularity_keeps_tracked_users_able_to_log_in(
    services: Services,
) -> None:
    """``user`` (and ``session``) granularity stay available. A user whose devices were
    tracked under ``device`` must still get working tokens after the operator switches:
    a login that does not list its device mints tokens the user's own key refuses."""
    user_id = register(services, "lee")
    sign_in(services, "lee")
    assert services.store.devices(user_id) is not None
    for granularity in ("user", "session"):
        services.settings = services.settings.replace(session_granularity=granularity)
        tokens = sign_in(services, "lee", granularity)
        assert accepted(services, tokens), granularity
        renewed = refreshed(services, tokens)
        assert renewed is not None, granularity
        assert accepted(services, renewed), granularity


# -- races that hold (regression tests) -----------------------------------------------------


def test_refresh_racing_its_device_sign_out(services: Services) -> None:
    """The signed-out device's refresh, paused at every statement, vs the sign-out."""

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        name = f"dev-{n}-{secrets.token_hex(3)}"
        user_id = register(services, name)
        phone = sign_in(services, name)
        sid = sid_of(services, phone)
        return (
            lambda: auth.refresh_grant(services, Response(), phone["refresh_token"]).model_dump(),
            lambda: me.end_device(services, user_id, sid),
        )

    assert len(rounds(services, setup)) >= 4


def test_refresh_racing_the_eviction_of_its_device(services: Services) -> None:
    """The oldest device refreshes while a sign-in past the limit signs it out."""
    services.settings = services.settings.replace(max_devices=1)

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        name = f"evict-{n}-{secrets.token_hex(3)}"
        register(services, name)
        oldest = sign_in(services, name)
        return (
            lambda: auth.refresh_grant(services, Response(), oldest["refresh_token"]).model_dump(),
            lambda: sign_in(services, name, "newer"),
        )

    assert len(rounds(services, setup)) >= 4


def test_two_logins_past_the_limit_lose_no_update(services: Services) -> None:
    """Login A paused at every statement while login B runs: the list never exceeds the
    limit, both logins are accounted for, and every live session is a listed device."""
    services.settings = services.settings.replace(max_devices=2)
    for n in range(1, 40):
        name = f"two-{n}-{secrets.token_hex(3)}"
        user_id = register(services, name)
        sign_in(services, name, "first")
        pause = Pause(services.engine, n)
        with pause.installed():
            a_thread, a = run(lambda name=name: sign_in(services, name, "a"), pause)
            while not (pause.reached.is_set() or a.done.is_set()):
                pause.reached.wait(0.01)
            if a.done.is_set() and not pause.reached.is_set():
                return
            b_thread, b = run(lambda name=name: sign_in(services, name, "b"))
            b.done.wait(0.2)
            pause.release.set()
            a_thread.join(30)
            b_thread.join(30)
        assert b.error is None, repr(b.error)
        devices = services.store.devices(user_id)
        assert devices is not None
        assert len(devices) == 2
        assert_sessions_are_the_devices(services, user_id)
        assert live_families(services, user_id) == set(devices)
        for outcome in (a, b):
            if outcome.error is None:
                assert accepted(services, outcome.value) == (sid_of_raw(outcome.value) in devices)
            else:
                assert isinstance(outcome.error, HTTPException), repr(outcome.error)
    pytest.fail("the login ran more than 40 statements")


def sid_of_raw(tokens: dict[str, Any]) -> str:
    """The sid of an access token without verifying it (it may be signed out)."""
    payload = tokens["access_token"].split(".")[1]
    return str(orjson.loads(b64url_decode(payload))["sid"])


def test_an_empty_tracked_list_is_never_untracked(services: Services) -> None:
    """``token_devices = ''`` (every device signed out) refuses every token, on the row
    path and on the store/cache path alike; NULL alone means untracked."""
    user_id = register(services, "moe")
    phone = sign_in(services, "moe")
    assert me.end_device(services, user_id, sid_of(services, phone))
    assert services.store.devices(user_id) == []
    assert not accepted(services, phone)
    key = services.store.load(user_id)
    assert key is not None
    assert key.devices == frozenset()
    with services.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_devices FROM sjti_users")).scalar_one()
    assert stored == ""
