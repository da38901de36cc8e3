"""sjti.drf on a real database: simplejwt's endpoints, both layers, RFC 6750 answers."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["user_model", "one_to_one"])
def secrets_mode(request: pytest.FixtureRequest, sjti_settings: Any) -> str:
    """Both places a key can live: on the user model, or in the app's one-to-one row."""
    sjti_settings(SECRETS=request.param)
    return str(request.param)


def test_token_pair_then_me(secrets_mode: str, make_user: Any, login: Any, client: Any) -> None:
    """token/ answers simplejwt's body, and the access token opens /api/me (both layers)."""
    alice = make_user("alice")
    pair = login("alice")
    assert set(pair) == {"access", "refresh"}
    response = client.get("/api/me", **bearer(pair["access"]))
    assert response.status_code == 200
    assert response.json() == {"sub": str(alice.pk), "username": "alice"}


def test_access_token_carries_simplejwt_claims(make_user: Any, login: Any) -> None:
    """Clients that read simplejwt's token_type / user_id from the payload keep working."""
    import jwt

    alice = make_user("alice")
    claims = jwt.decode(login("alice")["access"], options={"verify_signature": False})
    assert claims["token_type"] == "access"
    assert claims["user_id"] == alice.pk
    assert claims["sub"] == str(alice.pk)
    assert "sjti" in claims


def test_wrong_password_is_simplejwts_401(make_user: Any, client: Any) -> None:
    """A bad password gets simplejwt's no_active_account answer, and no key is made."""
    alice = make_user("alice")
    response = client.post(
        "/api/auth/token/",
        {"username": "alice", "password": "nope"},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert response.json()["code"] == "no_active_account"
    alice.refresh_from_db()
    assert alice.token_secret is None


def test_missing_field_is_400(client: Any) -> None:
    """A body without the username is a DRF validation error, not a 500."""
    response = client.post("/api/auth/token/", {"password": "x"}, content_type="application/json")
    assert response.status_code == 400
    assert "username" in response.json()


def test_no_token_is_401_with_bare_challenge(client: Any) -> None:
    """No credentials: 401 with `Bearer realm="api"` and no error attribute (RFC 6750 3.1)."""
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_garbage_token_is_malformed(client: Any) -> None:
    """A token that is not a JWS: invalid_token with the stable code, never a 500."""
    response = client.get("/api/me", **bearer("not-a-token"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="malformed"'
    )
    assert response.json()["code"] == "token_not_valid"
    assert response.json()["error_description"] == "malformed"


def test_logout_all_refuses_access_and_refresh(
    secrets_mode: str, make_user: Any, login: Any, client: Any
) -> None:
    """logout-all/: the access token and the refresh token both stop working at once."""
    make_user("alice")
    pair = login("alice")
    response = client.post("/api/auth/logout-all/", **bearer(pair["access"]))
    assert response.status_code == 200
    refused = client.get("/api/me", **bearer(pair["access"]))
    assert refused.status_code == 401
    assert refused.json()["error_description"] == "revoked"
    again = client.post(
        "/api/auth/token/refresh/", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert again.status_code == 401
    assert again.json()["code"] == "token_not_valid"


def test_logout_ends_this_device_only_for_refresh(make_user: Any, login: Any, client: Any) -> None:
    """logout/ with a refresh token: that device's family ends, the other device refreshes
    and gets an access token under the new key; the old access tokens are refused."""
    make_user("alice")
    phone, laptop = login("alice"), login("alice")
    response = client.post(
        "/api/auth/logout/",
        {"refresh": phone["refresh"]},
        content_type="application/json",
        **bearer(phone["access"]),
    )
    assert response.status_code == 200
    assert client.get("/api/me", **bearer(laptop["access"])).status_code == 401
    dead = client.post(
        "/api/auth/token/refresh/", {"refresh": phone["refresh"]}, content_type="application/json"
    )
    assert dead.status_code == 401
    alive = client.post(
        "/api/auth/token/refresh/", {"refresh": laptop["refresh"]}, content_type="application/json"
    )
    assert alive.status_code == 200
    assert client.get("/api/me", **bearer(alive.json()["access"])).status_code == 200


def test_refresh_rotates_and_reuse_revokes(
    secrets_mode: str, make_user: Any, login: Any, client: Any
) -> None:
    """token/refresh/ rotates; presenting the old refresh token again is reuse: the family
    ends and the user's key rotates (the newest access token is refused too)."""
    make_user("alice")
    pair = login("alice")
    first = client.post(
        "/api/auth/token/refresh/", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh"] != pair["refresh"]
    assert client.get("/api/me", **bearer(rotated["access"])).status_code == 200
    reuse = client.post(
        "/api/auth/token/refresh/", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert reuse.status_code == 401
    assert reuse.json()["error_description"] == "refresh_reused"
    assert client.get("/api/me", **bearer(rotated["access"])).status_code == 401
    follow = client.post(
        "/api/auth/token/refresh/", {"refresh": rotated["refresh"]}, content_type="application/json"
    )
    assert follow.status_code == 401


def test_forged_refresh_token_refused_without_query(
    make_user: Any, client: Any, django_assert_num_queries: Any
) -> None:
    """A refresh token whose MAC fails is refused before any query (the split-token MAC)."""
    forged = "A" * 22 + "." + "B" * 43 + "." + "C" * 43
    with django_assert_num_queries(0):
        response = client.post(
            "/api/auth/token/refresh/", {"refresh": forged}, content_type="application/json"
        )
    assert response.status_code == 401


def test_refresh_tokens_are_stored_as_hashes(make_user: Any, login: Any) -> None:
    """The database never holds a refresh token: only its id and SHA-256 of its secret."""
    from sjti.django.models import RefreshToken

    make_user("alice")
    refresh = login("alice")["refresh"]
    (row,) = RefreshToken.objects.all()
    token_id, secret, _mac = refresh.split(".")
    assert row.id == token_id
    assert secret not in row.verifier_hash
    assert len(row.verifier_hash) == 64
    assert refresh not in repr(list(RefreshToken.objects.values()))


def test_verify_is_revocation_aware(make_user: Any, login: Any, client: Any) -> None:
    """token/verify/ checks both layers: {} before, 401 "revoked" after a revocation."""
    from sjti.django.keys import revoke

    alice = make_user("alice")
    access = login("alice")["access"]
    ok = client.post("/api/auth/token/verify/", {"token": access}, content_type="application/json")
    assert (ok.status_code, ok.json()) == (200, {})
    revoke([alice.pk], actor="test", reason="test")
    bad = client.post("/api/auth/token/verify/", {"token": access}, content_type="application/json")
    assert bad.status_code == 401
    assert bad.json()["error_description"] == "revoked"


def test_blacklist_ends_the_family(make_user: Any, login: Any, client: Any) -> None:
    """token/blacklist/ ends the refresh token's family: it and its successors are refused."""
    make_user("alice")
    pair = login("alice")
    done = client.post(
        "/api/auth/token/blacklist/", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert (done.status_code, done.json()) == (200, {})
    again = client.post(
        "/api/auth/token/refresh/", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert again.status_code == 401


def test_deactivated_user_refused(make_user: Any, login: Any, client: Any) -> None:
    """is_active=False revokes (signal) and the user is refused even before that."""
    alice = make_user("alice")
    access = login("alice")["access"]
    alice.is_active = False
    alice.save()
    alice.refresh_from_db()
    assert alice.token_version == 2
    response = client.get("/api/me", **bearer(access))
    assert response.status_code == 401
    assert response.json()["error_description"] == "revoked"


def test_password_change_revokes(
    secrets_mode: str, make_user: Any, login: Any, client: Any
) -> None:
    """set_password + save: every token of the user is refused (the signal revokes)."""
    from sjti.django.models import RevocationAudit

    alice = make_user("alice")
    pair = login("alice")
    alice.set_password("new-password")
    alice.save()
    assert client.get("/api/me", **bearer(pair["access"])).status_code == 401
    audit = RevocationAudit.objects.order_by("-id").first()
    assert audit is not None
    assert (audit.actor, audit.reason) == ("django:signal", "password changed")


def test_password_change_in_atomic_revokes_after_commit(
    make_user: Any, login: Any, client: Any
) -> None:
    """Inside transaction.atomic() the revocation waits for the commit (no self-deadlock),
    and a rolled-back password change revokes nothing."""
    from django.db import transaction

    alice = make_user("alice")
    access = login("alice")["access"]

    class Rollback(Exception):
        pass

    def change_then_fail() -> None:
        with transaction.atomic():
            alice.set_password("x")
            alice.save()
            raise Rollback

    with pytest.raises(Rollback):
        change_then_fail()
    assert client.get("/api/me", **bearer(access)).status_code == 200
    with transaction.atomic():
        alice.set_password("y")
        alice.save()
        inside = client.get("/api/me", **bearer(access))
        assert inside.status_code == 200, inside.content  # not yet
    assert client.get("/api/me", **bearer(access)).status_code == 401


def test_revocation_audit_and_event_in_one_transaction(make_user: Any, login: Any) -> None:
    """One revocation wrote the key rotation, ended the families, an audit row and an
    event row (the store's plan; refresh families ride in its also=)."""
    from sqlalchemy import text

    from sjti.django._runtime import runtime
    from sjti.django.keys import revoke
    from sjti.django.models import RefreshFamily

    alice = make_user("alice")
    login("alice")
    result = revoke([alice.pk], actor="test", reason="incident")
    assert result is not None
    assert result.count == 1
    assert result.event_id is not None
    assert RefreshFamily.objects.filter(user=alice, revoked=False).count() == 0
    with runtime().store.engine.connect() as conn:
        audit_id = conn.execute(
            text("select audit_id from sjti_revocation_events where id = :id"),
            {"id": result.event_id},
        ).scalar_one()
    assert audit_id == result.audit_id


def test_stale_user_save_does_not_undo_a_revocation(
    make_user: Any, login: Any, client: Any
) -> None:
    """A user instance loaded before a revocation and saved after it must not write the
    old key back (TokenSecretFields.save leaves sjti's columns to the store)."""
    from sjti.django.keys import revoke

    alice = make_user("alice")
    access = login("alice")["access"]
    stale = type(alice).objects.get(pk=alice.pk)
    revoke([alice.pk], actor="test", reason="test")
    stale.first_name = "Alice"
    stale.save()
    assert client.get("/api/me", **bearer(access)).status_code == 401
    fresh = type(alice).objects.get(pk=alice.pk)
    assert (fresh.first_name, fresh.token_version) == ("Alice", 2)
