"""The runbook of docs/migration.md, step by step: tokens minted by the REAL simplejwt (and
by plain PyJWT) before the switch are accepted until the cutoff, refused after a
revocation, refused after the cutoff with their own code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from .conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def simplejwt_pair(make_user: Any) -> Any:
    """Step 0, before the switch: simplejwt mints alice's and bob's tokens."""
    from rest_framework_simplejwt.tokens import RefreshToken

    def mint(username: str) -> tuple[Any, str, str]:
        user = make_user(username)
        refresh = RefreshToken.for_user(user)
        return user, str(refresh.access_token), str(refresh)

    return mint


@pytest.fixture
def window(sjti_settings: Any, settings: Any) -> Any:
    """Step 1, the switch: SJTI["LEGACY"] with simplejwt's key and algorithm."""

    def open_until(until: datetime, **extra: Any) -> Any:
        from sjti.django._runtime import runtime

        sjti_settings(
            LEGACY={
                "UNTIL": until.isoformat(),
                "KEYS": [settings.SECRET_KEY],
                "ALGORITHMS": ["HS256"],
                **extra,
            }
        )
        return runtime().options.legacy

    return open_until


def test_simplejwt_access_token_accepted_in_the_window(
    simplejwt_pair: Any, window: Any, client: Any
) -> None:
    """simplejwt's access token opens /api/me after the switch, counted as legacy."""
    _, access, _ = simplejwt_pair("alice")
    policy = window(datetime.now(UTC) + timedelta(days=30))
    response = client.get("/api/me", **bearer(access))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert policy.stats().accepted == 1


def test_simplejwt_token_refused_after_revocation(
    simplejwt_pair: Any, window: Any, client: Any
) -> None:
    """Revoking bob (who has no sjti key yet) refuses his simplejwt token at once; alice's
    still works: legacy tokens are revocable per user from day one."""
    from sjti.django.keys import revoke

    _, alice_access, _ = simplejwt_pair("alice")
    bob, bob_access, _ = simplejwt_pair("bob")
    window(datetime.now(UTC) + timedelta(days=30))
    revoke([bob.pk], actor="test", reason="stolen laptop")
    refused = client.get("/api/me", **bearer(bob_access))
    assert refused.status_code == 401
    assert refused.json()["error_description"] == "revoked"
    assert client.get("/api/me", **bearer(alice_access)).status_code == 200


def test_simplejwt_token_refused_after_the_cutoff(
    simplejwt_pair: Any, window: Any, client: Any
) -> None:
    """After the cutoff: 401 with the distinct code legacy_window_closed."""
    _, access, _ = simplejwt_pair("alice")
    window(datetime.now(UTC) - timedelta(seconds=1))
    response = client.get("/api/me", **bearer(access))
    assert response.status_code == 401
    assert response.json()["error_description"] == "legacy_window_closed"
    assert 'error_description="legacy_window_closed"' in response["WWW-Authenticate"]


def test_simplejwt_refresh_exchanged_once_for_an_sjti_pair(
    simplejwt_pair: Any, window: Any, client: Any
) -> None:
    """token/refresh/ takes simplejwt's refresh token once, answering an sjti pair (the
    client moves over without a login); a second exchange is reuse: refused, user revoked."""
    _, _, legacy_refresh = simplejwt_pair("alice")
    window(datetime.now(UTC) + timedelta(days=30))
    first = client.post(
        "/api/auth/token/refresh/", {"refresh": legacy_refresh}, content_type="application/json"
    )
    assert first.status_code == 200
    pair = first.json()
    claims = jwt.decode(pair["access"], options={"verify_signature": False})
    assert "sjti" in claims
    assert client.get("/api/me", **bearer(pair["access"])).status_code == 200
    again = client.post(
        "/api/auth/token/refresh/", {"refresh": legacy_refresh}, content_type="application/json"
    )
    assert again.status_code == 401
    assert again.json()["error_description"] == "refresh_reused"
    assert client.get("/api/me", **bearer(pair["access"])).status_code == 401


def test_user_switching_to_sjti_keeps_other_devices(
    simplejwt_pair: Any, window: Any, client: Any, login: Any
) -> None:
    """A user's first sjti login (their key made lazily) does not refuse the simplejwt
    token of their other device: nobody is logged out by the switch."""
    _, access, _ = simplejwt_pair("alice")
    window(datetime.now(UTC) + timedelta(days=30))
    login("alice")
    assert client.get("/api/me", **bearer(access)).status_code == 200


def test_plain_pyjwt_tokens(make_user: Any, window: Any, client: Any) -> None:
    """A hand-rolled PyJWT setup (user in sub, no token_type): accepted in the window,
    refused after a revocation."""
    from sjti.django.keys import revoke

    alice = make_user("alice")
    old_key = "the-old-hand-rolled-signing-key-0123456789abcdef"
    now = int(datetime.now(UTC).timestamp())
    token = jwt.encode({"sub": str(alice.pk), "iat": now - 5, "exp": now + 600}, old_key, "HS256")
    window(
        datetime.now(UTC) + timedelta(days=1),
        KEYS=[old_key],
        USER_ID_CLAIM="sub",
        TOKEN_TYPE=None,
    )
    assert client.get("/api/me", **bearer(token)).status_code == 200
    revoke([alice.pk], actor="test", reason="test")
    assert client.get("/api/me", **bearer(token)).status_code == 401


def test_forged_legacy_token_refused(make_user: Any, window: Any, client: Any) -> None:
    """A token without sjti signed with a key the window does not hold: bad_signature."""
    alice = make_user("alice")
    window(datetime.now(UTC) + timedelta(days=1))
    now = int(datetime.now(UTC).timestamp())
    forged = jwt.encode(
        {"token_type": "access", "user_id": alice.pk, "iat": now, "exp": now + 60},
        "an-attackers-guess-at-the-key-0123456789-abcdef",
        "HS256",
    )
    response = client.get("/api/me", **bearer(forged))
    assert response.status_code == 401
    assert response.json()["error_description"] == "bad_signature"
