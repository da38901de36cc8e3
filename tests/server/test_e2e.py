"""End to end against a real ``sjti serve`` process on SQLite (the defaults)."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import httpx
import jwt
import pytest

from .harness import ADMIN, PASSWORD, Server, bearer, login, refresh, register


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_register_login_me_logout_then_me_is_invalid_token(server: Server) -> None:
    """The main story: logout ends the access token at once, with an RFC 6750 answer."""
    with server.client() as client:
        name = _name("alice")
        register(client, name)
        assert (
            client.post("/users", json={"username": name, "password": PASSWORD}).status_code == 409
        )
        tokens = login(client, name)
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 900
        me = client.get("/me", headers=bearer(tokens))
        assert me.status_code == 200
        assert me.json()["username"] == name
        assert client.post("/logout", headers=bearer(tokens)).status_code == 204
        after = client.get("/me", headers=bearer(tokens))
        assert after.status_code == 401
        challenge = after.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert 'error_description="revoked"' in challenge
        assert refresh(client, tokens["refresh_token"]).status_code == 400


def test_register_refuses_weak_or_missing_fields(server: Server) -> None:
    """Bad registrations are 422, never 500."""
    with server.client() as client:
        for body in (
            {"username": _name("bob")},
            {"password": PASSWORD},
            {"username": _name("bob"), "password": "short"},
            {"username": _name("bob"), "password": "aaaaaaaaaaaaaa"},
            {"username": "x", "password": PASSWORD},
        ):
            assert client.post("/users", json=body).status_code == 422, body


def test_wrong_credentials_are_401_alike_then_429(server: Server) -> None:
    """Unknown user and wrong password look the same; repeated failures are throttled."""
    with server.client() as client:
        name = _name("carol")
        register(client, name)
        form = {"grant_type": "password", "username": name, "password": "wrong password!"}
        unknown = {**form, "username": _name("nobody")}
        a = client.post("/token", data=form)
        b = client.post("/token", data=unknown)
        assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert a.status_code == 401
        client.post("/token", data=form)
        client.post("/token", data=form)
        throttled = client.post("/token", data={**form, "password": PASSWORD})
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1


def test_refresh_rotates_and_reuse_revokes_the_family(server: Server) -> None:
    """A rotated refresh token presented again kills its session and is audited."""
    with server.client() as client:
        name = _name("dave")
        register(client, name)
        first = login(client, name)
        rotated = refresh(client, first["refresh_token"])
        assert rotated.status_code == 200
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert client.get("/me", headers=bearer(second)).status_code == 200
        reuse = refresh(client, first["refresh_token"])
        assert reuse.status_code == 400
        assert reuse.json()["error"] == "invalid_grant"
        assert refresh(client, second["refresh_token"]).status_code == 400  # family gone
        assert client.get("/me", headers=bearer(second)).status_code == 401  # key rotated
        admin = _admin(server, client)
        trail = client.get("/admin/revocations", headers=bearer(admin)).json()
        assert any("reuse" in (record["reason"] or "") for record in trail)


def test_device_logout_ends_that_session_only(server: Server) -> None:
    """DELETE /sessions/{id} signs one device out (its refresh and access tokens, the
    default device granularity) and says so; the other device stays signed in."""
    with server.client() as client:
        name = _name("erin")
        register(client, name)
        phone = login(client, name, **{"User-Agent": "phone"})
        laptop = login(client, name, **{"User-Agent": "laptop"})
        listed = client.get("/sessions", headers=bearer(laptop)).json()
        assert sorted(s["user_agent"] for s in listed) == ["laptop", "phone"]
        phone_id = next(s["id"] for s in listed if s["user_agent"] == "phone")
        gone = client.delete(f"/sessions/{phone_id}", headers=bearer(laptop))
        assert gone.status_code == 200
        assert gone.json()["access_tokens"].startswith("refused from now on (per-device")
        assert refresh(client, phone["refresh_token"]).status_code == 400
        assert refresh(client, laptop["refresh_token"]).status_code == 200
        assert client.get("/me", headers=bearer(phone)).status_code == 401  # device granularity
        assert client.delete(f"/sessions/{phone_id}", headers=bearer(laptop)).status_code == 404


def _admin(server: Server, client: httpx.Client) -> dict[str, str]:
    server.make_admin()  # idempotent: "is taken" the second time
    return login(client, ADMIN)


def test_admin_cohort_revocation_with_dry_run(server: Server) -> None:
    """Dry run names the cohort and changes nothing; the real run ends their tokens."""
    with server.client() as client:
        victims = [_name("frank"), _name("grace")]
        tokens = {}
        for name in victims:
            register(client, name)
            tokens[name] = login(client, name)
        admin = _admin(server, client)
        assert (
            client.post(
                "/admin/revocations",
                json={"cohort": {"role": "user"}},
                headers=bearer(tokens[victims[0]]),
            ).status_code
            == 403
        )
        body = {"cohort": {"role": "user"}, "dry_run": True, "reason": "incident 42"}
        dry = client.post("/admin/revocations", json=body, headers=bearer(admin))
        assert dry.status_code == 200, dry.text
        ids = {client.get("/me", headers=bearer(t)).json()["id"] for t in tokens.values()}
        assert ids <= set(dry.json()["user_ids"])
        assert dry.json()["audit_id"] is None
        assert (
            client.post(
                "/admin/revocations", json={"cohort": {}}, headers=bearer(admin)
            ).status_code
            == 422
        )
        real = client.post(
            "/admin/revocations", json={**body, "dry_run": False}, headers=bearer(admin)
        )
        assert real.status_code == 200
        assert real.json()["refresh_sessions_revoked"] >= 2
        for t in tokens.values():
            assert client.get("/me", headers=bearer(t)).status_code == 401
            assert refresh(client, t["refresh_token"]).status_code == 400
        assert client.get("/me", headers=bearer(admin)).status_code == 200  # not in the cohort
        trail = client.get("/admin/revocations", headers=bearer(admin)).json()
        assert trail[0]["id"] == real.json()["audit_id"]
        assert trail[0]["reason"] == "incident 42"


def test_jwks_lets_pyjwt_verify_an_access_token(server: Server) -> None:
    """A boundary service needs only the JWKS: PyJWT's PyJWKClient verifies our EdDSA token."""
    with server.client() as client:
        name = _name("heidi")
        register(client, name)
        tokens = login(client, name)
        jwks = client.get("/.well-known/jwks.json")
        assert "max-age" in jwks.headers["cache-control"]
        assert all("d" not in key for key in jwks.json()["keys"])
    signing_key = jwt.PyJWKClient(f"{server.url}/.well-known/jwks.json").get_signing_key_from_jwt(
        tokens["access_token"]
    )
    claims = jwt.decode(
        tokens["access_token"], signing_key.key, algorithms=["EdDSA"],
        audience="api.test", issuer="https://auth.test",
    )  # fmt: skip
    assert claims["sub"]
    assert "sjti" in claims


def test_introspect_and_revoke(server: Server) -> None:
    """RFC 7662 needs an authenticated client; RFC 7009 revokes and always answers 200."""
    with server.client() as client:
        name = _name("ivan")
        register(client, name)
        tokens = login(client, name)
        form = {"token": tokens["access_token"]}
        assert client.post("/introspect", data=form).status_code == 401
        assert client.post("/introspect", data=form, headers=bearer(tokens)).status_code == 401
        admin = _admin(server, client)
        active = client.post("/introspect", data=form, headers=bearer(admin)).json()
        assert active["active"] is True
        assert active["username"] == name
        refresh_info = client.post(
            "/introspect", data={"token": tokens["refresh_token"]}, headers=bearer(admin)
        ).json()
        assert refresh_info["token_type"] == "refresh_token"
        assert client.post("/revoke", data={"token": "garbage"}).status_code == 200
        assert client.post("/revoke", data={"token": tokens["refresh_token"]}).status_code == 200
        assert refresh(client, tokens["refresh_token"]).status_code == 400
        assert client.post("/revoke", data=form).status_code == 200
        assert client.post("/introspect", data=form, headers=bearer(admin)).json() == {
            "active": False
        }


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer x", "Bearer a.b.c", "Basic abc", "Bearer " + "A" * 20_000,
     "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer \u00e9\u00e9.\u00e9"],
)  # fmt: skip
def test_garbage_bearer_tokens_are_401_never_500(server: Server, authorization: str) -> None:
    """Hostile Authorization headers get an RFC 6750 401."""
    with server.client() as client:
        response = client.get("/me", headers={"Authorization": authorization.encode()})  # type: ignore[dict-item]
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer ")


def test_garbage_bodies_are_4xx_never_500(server: Server) -> None:
    """Malformed JSON, forms and grants are client errors."""
    with server.client() as client:
        answers = [
            client.post(
                "/users", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            client.post("/users", json=[1, 2]),
            client.post("/token", data={"grant_type": "magic"}),
            client.post("/token", data={"grant_type": "password"}),
            client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "a.b.c"}),
            client.post(
                "/token",
                content=b"\xff\xfe",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            client.delete("/sessions/" + "x" * 500),
            client.get("/admin/revocations?limit=-1"),
        ]
        assert all(400 <= r.status_code < 500 for r in answers), [r.status_code for r in answers]


def test_ops_endpoints(server: Server) -> None:
    """Health, readiness and Prometheus metrics answer."""
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["database"] is True
        metrics = client.get("/metrics").text
        assert "sjti_verifications_total" in metrics
        assert "sjti_key_cache_lookups" in metrics
        assert client.get("/docs").status_code == 200


def test_key_file_is_private(server: Server) -> None:
    """The generated key file (signing keys + dev KEK) is mode 0600."""
    key_file = Path(server.log).parent / "sjti-keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_cli_operates_the_running_service(server: Server) -> None:
    """`sjti users` with the service's settings, while it runs: a role given on the command
    line is the one the service enforces; a disabled user is refused at once."""
    with server.client() as client:
        register(client, "cli-dave")
        dave = login(client, "cli-dave")
        assert client.get("/admin/revocations", headers=bearer(dave)).status_code == 403
        promoted = server.cli("users", "set-role", "cli-dave", "admin")
        assert promoted.returncode == 0, promoted.stderr
        assert client.get("/admin/revocations", headers=bearer(dave)).status_code == 200
        shown = json.loads(server.cli("users", "show", "cli-dave", "--json").stdout)
        assert (shown["role"], shown["disabled"]) == ("admin", False)

        disabled = server.cli("users", "disable", "cli-dave", "--reason", "e2e")
        assert disabled.returncode == 0, disabled.stderr
        assert "1 refresh session(s) ended" in disabled.stdout
        assert client.get("/me", headers=bearer(dave)).status_code == 401
        assert refresh(client, dave["refresh_token"]).status_code == 400
        again = client.post(
            "/token",
            data={"grant_type": "password", "username": "cli-dave", "password": PASSWORD},
        )
        assert again.status_code == 401


def test_registration_never_grants_a_role(server: Server) -> None:
    """Whoever registers the name an operator might have wanted is a plain user."""
    with server.client() as client:
        register(client, "admin")
        tokens = login(client, "admin")
        assert client.get("/me", headers=bearer(tokens)).json()["roles"] == ["user"]
        assert client.get("/admin/revocations", headers=bearer(tokens)).status_code == 403


def test_cli_revoke_and_events_operate_the_services_database(server: Server) -> None:
    """`sjti revoke` on the service's own database, by username, with cohort flags: keys
    and refresh sessions end together; `sjti events` reads the same log."""
    with server.client() as client:
        register(client, "cli-erin")
        erin = login(client, "cli-erin")
        url = ("--database-url", "sqlite:///sjti.db")
        preview = server.cli("revoke", "--role", "user", "--dry-run", "--json", *url)
        assert preview.returncode == 0, preview.stderr
        assert json.loads(preview.stdout)["count"] >= 1
        done = server.cli("revoke", "--user", "cli-erin", "--reason", "cli e2e", "--json", *url)
        assert done.returncode == 0, done.stderr
        event = json.loads(done.stdout)["event_ids"][0]
        assert client.get("/me", headers=bearer(erin)).status_code == 401
        assert refresh(client, erin["refresh_token"]).status_code == 400
        nodes = server.cli("events", "nodes", "--json", *url)
        assert nodes.returncode == 0, nodes.stderr
        assert json.loads(nodes.stdout)["latest_event"] >= event
        unknown = server.cli("revoke", "--user", "nobody-at-all", *url)
        assert (unknown.returncode, "unknown user 'nobody-at-all'" in unknown.stderr) == (1, True)


def test_cli_token_commands_use_the_services_keys_and_defaults(server: Server) -> None:
    """`sjti token verify` in the service's directory: its key file, its database, its
    issuer; a token of the service verifies in both layers, and a revoked one names why."""
    with server.client() as client:
        register(client, "cli-gina")
        gina = login(client, "cli-gina")
    args = ("--key-file", "sjti-keys.json", "--database-url", "sqlite:///sjti.db")
    verified = server.cli("token", "verify", gina["access_token"], *args)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["iss"] == "https://auth.test"
    assert (
        server.cli("revoke", "--user", "cli-gina", "--database-url", "sqlite:///sjti.db").returncode
        == 0
    )
    refused = server.cli("token", "verify", gina["access_token"], *args)
    assert refused.returncode == 1
    assert "refused by the user layer: revoked" in refused.stderr
