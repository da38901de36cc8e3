"""Per-device revocation in the reference service (the default granularity), in process on
SQLite and PostgreSQL: a device sign-out refuses that device's access tokens at once and
leaves the others, at zero extra queries per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import HTTPException, Response

from sjti import RevokedTokenError
from sjti.server.auth import verify_access_token
from sjti.server.models import NewUser
from sjti.server.routes import auth, oauth
from sjti.server.routes.me import end_device, logout_everywhere
from sjti.server.services import Services
from sjti.server.settings import Settings

from .test_races import PASSWORD, client_request


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
    yield built
    built.close()


def register(services: Services, name: str) -> str:
    user = auth.register(NewUser(username=name, password=PASSWORD), services, client_request())
    return str(user.id)


def sign_in(services: Services, name: str, agent: str = "phone") -> dict[str, Any]:
    request = client_request()
    request.headers = {"user-agent": agent}
    out = auth.password_grant(services, request, Response(), name, PASSWORD)
    return out.model_dump()


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


def test_signing_one_device_out_refuses_its_access_token_at_once(services: Services) -> None:
    user_id = register(services, "alice")
    phone, laptop = sign_in(services, "alice", "phone"), sign_in(services, "alice", "laptop")
    assert services.store.devices(user_id) == [sid_of(services, phone), sid_of(services, laptop)]
    assert end_device(services, user_id, sid_of(services, phone))
    assert not accepted(services, phone)
    assert accepted(services, laptop)
    assert refreshed(services, phone) is None
    renewed = refreshed(services, laptop)
    assert renewed is not None
    assert accepted(services, renewed)
    [row] = services.store.audit_log(limit=1)
    assert (row.kind, row.reason, row.count) == ("device", "device sign-out", 1)


def test_verifying_costs_one_query_with_or_without_devices(services: Services) -> None:
    """The device list rides on the user row /me loads anyway: one statement per request."""
    register(services, "bob")
    phone = sign_in(services, "bob")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(services.engine, "before_cursor_execute", count)
    try:
        verify_access_token(services, phone["access_token"])
    finally:
        sa.event.remove(services.engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert "token_devices" in statements[0]


def test_rfc7009_on_an_access_token_signs_that_device_out_only(services: Services) -> None:
    register(services, "carol")
    phone, laptop = sign_in(services, "carol"), sign_in(services, "carol", "laptop")
    oauth.revoke(services, phone["access_token"], "access_token")
    assert not accepted(services, phone)
    assert refreshed(services, phone) is None
    assert accepted(services, laptop)


def test_rfc7009_on_a_refresh_token_ends_the_devices_access_tokens_too(
    services: Services,
) -> None:
    register(services, "dan")
    phone, laptop = sign_in(services, "dan"), sign_in(services, "dan", "laptop")
    oauth.revoke(services, phone["refresh_token"], "refresh_token")
    assert not accepted(services, phone)
    assert accepted(services, laptop)


def test_refresh_reuse_ends_that_device_only(services: Services) -> None:
    """Reuse detection signs the reused device out (its access tokens too); the user's
    other devices stay signed in (the key does not rotate unless the operator asks)."""
    register(services, "erin")
    phone, laptop = sign_in(services, "erin"), sign_in(services, "erin", "laptop")
    assert refreshed(services, phone) is not None
    assert refreshed(services, phone) is None  # the same refresh token again: reuse
    assert not accepted(services, phone)
    assert accepted(services, laptop)
    [row] = services.store.audit_log(limit=1)
    assert (row.kind, row.count) == ("device", 1)
    assert row.reason is not None
    assert "reuse" in row.reason


def test_the_device_limit_signs_the_oldest_device_out(services: Services) -> None:
    user_id = register(services, "fay")
    first, *rest = [sign_in(services, "fay", f"device-{n}") for n in range(4)]
    assert not accepted(services, first)
    assert refreshed(services, first) is None  # its refresh family ended with it
    assert all(accepted(services, tokens) for tokens in rest)
    devices = services.store.devices(user_id)
    assert devices is not None
    assert len(devices) == 3
    [row] = services.store.audit_log(limit=1)
    assert (row.kind, row.reason) == ("device", "device limit")


def test_logout_everywhere_signs_every_device_out_and_a_new_login_works(
    services: Services,
) -> None:
    user_id = register(services, "gus")
    phone, laptop = sign_in(services, "gus"), sign_in(services, "gus", "laptop")
    logout_everywhere(services, user_id)
    assert not accepted(services, phone)
    assert not accepted(services, laptop)
    assert refreshed(services, laptop) is None
    assert services.store.devices(user_id) == []
    again = sign_in(services, "gus")
    assert accepted(services, again)


def test_a_session_from_before_devices_were_tracked_is_refused_after_a_sign_in(
    services: Services,
) -> None:
    """A user-granularity login made a family that is not a listed device: once the user
    signs in with device tracking, that older session cannot refresh into the list."""
    register(services, "hal")
    user_granularity = services.settings.replace(session_granularity="user")
    services.settings = user_granularity
    old = sign_in(services, "hal", "old app")
    services.settings = user_granularity.replace(session_granularity="device")
    assert accepted(services, old)  # devices not tracked yet: nothing changes
    new = sign_in(services, "hal", "new app")
    assert accepted(services, new)
    assert not accepted(services, old)
    assert refreshed(services, old) is None
