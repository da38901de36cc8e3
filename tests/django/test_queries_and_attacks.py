"""The query-count proof, sjti's attack pack against the DRF endpoint, the admin action
and the management commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sjti.testing import AttackCase, SjtiUser, UserFactory

from .conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("mode", ["user_model", "one_to_one"])
def test_user_and_key_in_one_query(
    mode: str,
    sjti_settings: Any,
    make_user: Any,
    login: Any,
    client: Any,
    django_assert_num_queries: Any,
) -> None:
    """SjtiAuthentication loads the user WITH the key: one query per request, the user
    load DRF makes anyway (a join in the one-to-one mode), zero extra for revocation."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sjti_settings(SECRETS=mode)
    make_user("alice")
    access = login("alice")["access"]
    with CaptureQueriesContext(connection) as first:
        assert client.get("/api/me", **bearer(access)).status_code == 200
    assert len(first.captured_queries) == 1
    if mode == "one_to_one":
        assert "JOIN" in first.captured_queries[0]["sql"].upper()
    with django_assert_num_queries(1):
        assert client.get("/api/me", **bearer(access)).status_code == 200


def test_stateless_miss_one_query_hit_none(
    sjti_settings: Any,
    make_user: Any,
    login: Any,
    client: Any,
    django_assert_num_queries: Any,
    redis_url: str,
) -> None:
    """SjtiStatelessAuthentication: a cache miss reads the key in one query, a hit in none;
    a revocation (the store's listener, the Redis bus for other processes) drops the entry."""
    from sjti.django._runtime import runtime
    from sjti.django.keys import revoke

    sjti_settings(REDIS_URL=redis_url)
    alice = make_user("alice")
    access = login("alice")["access"]
    assert runtime().auth.wait_ready(10)
    with django_assert_num_queries(1):
        assert client.get("/api/me-stateless", **bearer(access)).status_code == 200
    with django_assert_num_queries(0):
        assert client.get("/api/me-stateless", **bearer(access)).status_code == 200
    revoke([alice.pk], actor="test", reason="test")
    refused = client.get("/api/me-stateless", **bearer(access))
    assert refused.status_code == 401
    assert refused.json()["error_description"] == "revoked"


class DjangoUsers(UserFactory):
    """The kit's users as real Django users: sub is the primary key, keys in the table."""

    def create(self, user_id: str | None = None, **attributes: object) -> SjtiUser:
        from django.contrib.auth import get_user_model

        from sjti.django.keys import ensure_key

        user = get_user_model().objects.create_user(username=user_id or f"kit-{id(self)}-x")
        user.username = f"kit-{user.pk}"
        user.save()
        ensure_key(user)
        return SjtiUser(str(user.pk))


@pytest.fixture
def sjti_keys() -> Any:
    from sjti.django._runtime import runtime

    return runtime().auth.keys


@pytest.fixture
def sjti_iss() -> str:
    return "https://api.test"


@pytest.fixture
def sjti_aud() -> str:
    return "api"


@pytest.fixture
def sjti_store() -> Any:
    from sjti.django._runtime import runtime

    return runtime().store


@pytest.fixture
def sjti_delete_user() -> Callable[[str], None]:
    def delete(user_id: str) -> None:
        from django.contrib.auth import get_user_model

        get_user_model().objects.filter(pk=int(user_id)).delete()

    return delete


@pytest.fixture
def sjti_users(sjti_store: Any, sjti_issuer: Any, sjti_delete_user: Any) -> UserFactory:
    return DjangoUsers(sjti_store, sjti_issuer, delete=sjti_delete_user)


def test_drf_endpoint_refuses_every_attack(sjti_attack: AttackCase, client: Any) -> None:
    """sjti's attack pack against /api/me (SjtiAuthentication): every forgery, stretched
    claim, other user's key, revoked and deleted user refused; the controls accepted."""
    sjti_attack.check(lambda token: client.get("/api/me", **bearer(token)))


def test_stateless_endpoint_refuses_every_attack(sjti_attack: AttackCase, client: Any) -> None:
    """The same pack against /api/me-stateless (the key through the cache): a signed-out
    device is refused there too (the record the cache holds carries the device list)."""
    sjti_attack.check(lambda token: client.get("/api/me-stateless", **bearer(token)))


def test_admin_revoke_action_previews_then_revokes(
    make_user: Any, login: Any, client: Any, admin_client: Any
) -> None:
    """The admin action shows the dry run (who holds a key, devices ended) and asks for a
    reason; confirmed, it revokes in one transaction and the audit row shows in the admin."""
    alice = make_user("alice")
    bob = make_user("bob")
    access = login("alice")["access"]
    login("alice")
    url = "/admin/testapp/user/"
    preview = admin_client.post(
        url, {"action": "revoke_tokens", "_selected_action": [alice.pk, bob.pk]}
    )
    assert preview.status_code == 200
    page = preview.content.decode()
    assert '<strong id="sjti-with-key">1</strong>' in page
    assert '<strong id="sjti-families">2</strong>' in page
    assert '<strong id="sjti-without-key">1</strong>' in page
    assert client.get("/api/me", **bearer(access)).status_code == 200  # a dry run
    no_reason = admin_client.post(
        url, {"action": "revoke_tokens", "_selected_action": [alice.pk], "confirm": "yes"}
    )
    assert no_reason.status_code == 200  # the page again, with the form's error
    assert client.get("/api/me", **bearer(access)).status_code == 200
    done = admin_client.post(
        url,
        {
            "action": "revoke_tokens",
            "_selected_action": [alice.pk, bob.pk],
            "confirm": "yes",
            "reason": "phished",
        },
    )
    assert done.status_code == 302
    assert client.get("/api/me", **bearer(access)).status_code == 401
    audit = admin_client.get("/admin/sjti_django/revocationaudit/")
    assert audit.status_code == 200
    assert "phished" in audit.content.decode()
    assert "admin:admin" in audit.content.decode()


def test_sjti_revoke_command(make_user: Any, login: Any, client: Any) -> None:
    """manage.py sjti_revoke --username: committed and audited when it returns."""
    from io import StringIO

    from django.core.management import call_command

    make_user("alice")
    access = login("alice")["access"]
    dry = StringIO()
    call_command("sjti_revoke", "--username", "alice", "--reason", "x", "--dry-run", stdout=dry)
    assert "1 hold a key" in dry.getvalue()
    assert client.get("/api/me", **bearer(access)).status_code == 200
    out = StringIO()
    call_command("sjti_revoke", "--username", "alice", "--reason", "lost phone", stdout=out)
    assert out.getvalue().startswith("revoked 1 user(s) (audit #")
    assert client.get("/api/me", **bearer(access)).status_code == 401


def test_sjti_revoke_unknown_user_is_a_command_error() -> None:
    """A typo in a username stops the command with a clear error, revoking nobody."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no such user: ghost"):
        call_command("sjti_revoke", "--username", "ghost", "--reason", "x")


def test_kek_rotate_and_keys_commands(make_user: Any, login: Any, client: Any) -> None:
    """sjti_kek_rotate re-wraps under a new first KEK without logging anyone out;
    sjti_keys --jwks prints public keys only."""
    import json
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command

    from sjti import Kek, KekRing
    from sjti.django import _runtime

    make_user("alice")
    access = login("alice")["access"]
    old = _runtime.runtime().auth.kek_ring
    new = KekRing([Kek.generate("new"), *old.keks])  # the new KEK first, the old after
    settings.SJTI = {**settings.SJTI, "KEK": new.to_config()}
    _runtime.reset()
    try:
        out = StringIO()
        call_command("sjti_kek_rotate", stdout=out)
        assert "1 key(s) re-wrapped, 0 left" in out.getvalue()
        assert client.get("/api/me", **bearer(access)).status_code == 200
        jwks = StringIO()
        call_command("sjti_keys", "--jwks", stdout=jwks)
        (key,) = json.loads(jwks.getvalue())["keys"]
        assert "d" not in key
        assert key["alg"] == "EdDSA"
    finally:
        settings.SJTI = {k: v for k, v in settings.SJTI.items() if k != "KEK"}


def test_backfill_gives_keys_to_keyless_users(make_user: Any) -> None:
    """sjti_backfill: every user gets a key (version 1: not a revocation); run again, none."""
    from io import StringIO

    from django.core.management import call_command

    alice, bob = make_user("alice"), make_user("bob")
    out = StringIO()
    call_command("sjti_backfill", stdout=out)
    assert out.getvalue().endswith("done: 2 key(s) made\n")
    for user in (alice, bob):
        user.refresh_from_db()
        assert (user.token_secret is not None, user.token_version) == (True, 1)
    again = StringIO()
    call_command("sjti_backfill", stdout=again)
    assert again.getvalue().endswith("done: 0 key(s) made\n")


def test_system_check_names_a_bad_setting(settings: Any) -> None:
    """A typo in settings.SJTI is a system check error naming it (sjti.E001)."""
    from sjti.django.checks import check_settings

    settings.SJTI = {**settings.SJTI, "ISSUR": "x"}
    (error,) = check_settings()
    assert error.id == "sjti.E001"
    assert "unknown setting 'ISSUR'" in error.msg
    assert "did you mean 'issuer'" in error.msg


def test_system_check_refuses_user_model_without_columns(settings: Any) -> None:
    """SECRETS='user_model' needs TokenSecretFields on the user model: E001 otherwise."""
    from sjti.django import conf

    with pytest.raises(Exception, match="SECRETS"):
        conf.split({"SECRETS": "elsewhere"})
