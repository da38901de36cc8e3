"""Device logout vs. access tokens, per SJTI_SESSION_GRANULARITY, on real server processes.

``device`` (the default) and ``session``: ``DELETE /sessions/{id}`` refuses that device's
access tokens at once, the other device keeps working. ``user``: the logged-out device's
access token stays valid until it expires; only its refresh tokens stop (as documented).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from .harness import Server, bearer, login, refresh, register


@pytest.fixture(scope="module")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(
        tmp_path_factory.mktemp("sjti-serve-session"), {"SJTI_SESSION_GRANULARITY": "session"}
    )
    yield started
    started.stop()


def _two_devices(client: httpx.Client) -> tuple[dict[str, str], dict[str, str], str]:
    """One user logged in on a phone (device A) and a laptop (device B); A's session id."""
    name = f"gran-{secrets.token_hex(4)}"
    register(client, name)
    phone = login(client, name, **{"User-Agent": "phone"})
    laptop = login(client, name, **{"User-Agent": "laptop"})
    listed = client.get("/sessions", headers=bearer(laptop)).json()
    phone_id = next(s["id"] for s in listed if s["user_agent"] == "phone")
    return phone, laptop, phone_id


def test_session_granularity_device_logout_refuses_that_device_at_once(
    session_server: Server,
) -> None:
    with session_server.client() as client:
        phone, laptop, phone_id = _two_devices(client)
        assert client.get("/me", headers=bearer(phone)).status_code == 200
        gone = client.delete(f"/sessions/{phone_id}", headers=bearer(laptop))
        assert gone.status_code == 200
        assert gone.json()["access_tokens"] == "refused from now on (per-session granularity)"

        refused = client.get("/me", headers=bearer(phone))
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert client.get("/me", headers=bearer(laptop)).status_code == 200
        assert refresh(client, phone["refresh_token"]).status_code == 400
        assert refresh(client, laptop["refresh_token"]).status_code == 200


@pytest.fixture(scope="module")
def user_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(
        tmp_path_factory.mktemp("sjti-serve-user"), {"SJTI_SESSION_GRANULARITY": "user"}
    )
    yield started
    started.stop()


def test_device_granularity_is_the_default_and_refuses_that_device_at_once(
    server: Server,
) -> None:
    with server.client() as client:
        phone, laptop, phone_id = _two_devices(client)
        gone = client.delete(f"/sessions/{phone_id}", headers=bearer(laptop))
        assert gone.status_code == 200
        assert gone.json()["access_tokens"].startswith("refused from now on (per-device")
        assert client.get("/me", headers=bearer(phone)).status_code == 401
        assert client.get("/me", headers=bearer(laptop)).status_code == 200
        assert refresh(client, phone["refresh_token"]).status_code == 400
        assert refresh(client, laptop["refresh_token"]).status_code == 200


def test_user_granularity_device_logout_leaves_access_tokens_until_expiry(
    user_server: Server,
) -> None:
    """The phone's refresh token is gone, its access token still works."""
    with user_server.client() as client:
        phone, laptop, phone_id = _two_devices(client)
        gone = client.delete(f"/sessions/{phone_id}", headers=bearer(laptop))
        assert gone.status_code == 200
        assert "until they expire" in gone.json()["access_tokens"]

        assert client.get("/me", headers=bearer(phone)).status_code == 200
        assert client.get("/me", headers=bearer(laptop)).status_code == 200
        assert refresh(client, phone["refresh_token"]).status_code == 400
