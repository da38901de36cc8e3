"""Login abuse handled as users expect: a stranger cannot lock the owner out, registration
is throttled, and an introspection client cannot be configured open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException, Response

from sjti import ConfigurationError
from sjti.server.models import NewUser
from sjti.server.routes import auth
from sjti.server.services import Services
from sjti.server.settings import Settings

from .test_races import PASSWORD, client_request


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = Services.build(
        Settings(
            database_url=f"sqlite:///{tmp_path}/abuse.db",
            key_file=str(tmp_path / "keys.json"),
            login_max_failures=3,
            registrations_per_ip=4,
        )
    )
    yield built
    built.close()


def attempt(services: Services, ip: str, password: str) -> int:
    try:
        auth.password_grant(services, client_request(ip), Response(), "owner", password)
    except HTTPException as refused:
        return refused.status_code
    return 200


def test_a_strangers_failures_never_lock_the_owner_out(services: Services) -> None:
    """Three bad guesses from 10.0.0.66 throttle 10.0.0.66, not the owner at 10.0.0.7."""
    auth.register(
        NewUser(username="owner", password=PASSWORD), services, client_request("10.0.0.7")
    )
    assert [attempt(services, "10.0.0.66", "wrong guess!!") for _ in range(4)] == [
        401,
        401,
        401,
        429,
    ]
    assert attempt(services, "10.0.0.66", PASSWORD) == 429  # the stranger stays throttled
    assert attempt(services, "10.0.0.7", PASSWORD) == 200  # the owner never was


def test_registration_is_throttled_per_client(services: Services) -> None:
    """201 vs 409 is a username oracle: attempts from one client are rate limited."""
    codes = []
    for i in range(5):
        try:
            body = NewUser(username=f"probe{i}", password=PASSWORD)
            auth.register(body, services, client_request("10.0.0.9"))
            codes.append(201)
        except HTTPException as refused:
            codes.append(refused.status_code)
    assert codes == [201, 201, 201, 201, 429]
    other = auth.register(
        NewUser(username="elsewhere", password=PASSWORD), services, client_request("10.0.0.10")
    )
    assert other.username == "elsewhere"


@pytest.mark.parametrize("secret", ["", "short-secret"])
def test_an_empty_or_short_introspection_secret_is_refused_at_start(secret: str) -> None:
    """An empty secret would open /introspect to `Basic base64(":")`."""
    with pytest.raises(ConfigurationError, match="at least 16 characters"):
        Settings(introspection_client_id="rs", introspection_client_secret=secret)


def test_an_introspection_secret_needs_its_client_id() -> None:
    with pytest.raises(ConfigurationError, match="needs a CLIENT_ID"):
        Settings(introspection_client_secret="x" * 32)
