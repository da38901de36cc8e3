"""The pages' security measures over plain HTTP (no browser needed): headers, cookies,
CSRF bound to the session, errors as pages, and the account actions' effect on tokens."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from sjti.server.models import TokenOut
from sjti.server.web._session import cookies_for, csrf_token, safe_next, set_session
from sjti.server.web.console import csv_cell
from sjti.server.web.useragent import device_label

from ..harness import PASSWORD, Server, bearer, login, refresh, register

HTML = {"Accept": "text/html"}


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


@contextlib.contextmanager
def signed_in(server: Server, name: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A client holding a page session (cookies), as a browser would."""
    with httpx.Client(base_url=server.url, headers=HTML, timeout=30) as client:
        form = client.get("/account/signin")
        answer = client.post(
            "/account/signin",
            data={"csrf_token": _csrf(form.text), "username": name, "password": password},
        )
        assert answer.status_code == 303, answer.text
        yield client


def test_pages_carry_a_strict_csp_and_refuse_framing(web_server: Server) -> None:
    """No inline script or style, no framing, no sniffing, no caching, no referrer."""
    with web_server.client() as api:
        answer = api.get("/account/signin", headers=HTML)
    csp = answer.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text
    assert " style=" not in answer.text


def test_session_cookies_are_httponly_lax_and_carry_no_secure_flag_in_development(
    web_server: Server,
) -> None:
    name = _name("cookie")
    with web_server.client() as api:
        register(api, name)
    with httpx.Client(base_url=web_server.url, headers=HTML) as client:
        form = client.get("/account/signin")
        answer = client.post(
            "/account/signin",
            data={"csrf_token": _csrf(form.text), "username": name, "password": PASSWORD},
        )
    cookies = {c.split("=", 1)[0]: c for c in answer.headers.get_list("set-cookie")}
    assert set(cookies) == {"sjti-access", "sjti-refresh", "sjti-csrf"}
    for header in cookies.values():
        assert "HttpOnly" in header
        assert "SameSite=lax" in header
        assert "Path=/" in header
        assert "Secure" not in header  # plain HTTP in development


def _request(scheme: str) -> Request:
    scope = {"type": "http", "scheme": scheme, "server": ("auth.test", 443), "path": "/account"}
    return Request({**scope, "headers": [(b"host", b"auth.test")]})


@pytest.mark.parametrize(
    ("scheme", "env", "secure"),
    [("http", "development", False), ("https", "development", True), ("http", "production", True)],
)
def test_cookies_are_host_prefixed_and_secure_over_https_or_in_production(
    scheme: str, env: str, secure: bool
) -> None:
    services: Any = SimpleNamespace(settings=SimpleNamespace(env=env, refresh_ttl=60))
    cookies = cookies_for(_request(scheme), services)
    assert cookies.secure is secure
    assert cookies.access == ("__Host-sjti-access" if secure else "sjti-access")
    response = Response()
    set_session(
        response, cookies, TokenOut(access_token="a", expires_in=9, refresh_token="r"), services
    )
    headers = response.headers.getlist("set-cookie")
    assert len(headers) == 2
    assert all(("Secure" in h) is secure and "Domain" not in h for h in headers)


def test_a_csrf_token_works_only_in_its_own_session(web_server: Server) -> None:
    """Alice's form token, posted with Bob's cookies, is refused; nothing is signed out."""
    alice, bob = _name("alice"), _name("bob")
    with web_server.client() as api:
        register(api, alice)
        register(api, bob)
    with signed_in(web_server, alice) as a, signed_in(web_server, bob) as b:
        stolen = _csrf(a.get("/account").text)
        refused = b.post("/account/sign-out-everywhere", data={"csrf_token": stolen})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert 'id="error-code">invalid_csrf_token<' in refused.text
        missing = b.post("/account/sign-out-everywhere", headers={"Accept": "*/*"})
        assert missing.status_code == 403
        assert missing.json()["code"] == "invalid_csrf_token"  # API clients get problem+json
        cross = b.post(
            "/account/sign-out-everywhere",
            data={"csrf_token": _csrf(b.get("/account").text)},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status_code == 403
        assert b.get("/account").status_code == 200  # still signed in


def test_csrf_tokens_are_bound_to_the_secret_and_the_session() -> None:
    token = csrf_token("s" * 43, "sid:one")
    assert token == csrf_token("s" * 43, "sid:one")
    assert token != csrf_token("s" * 43, "sid:two")
    assert token != csrf_token("t" * 43, "sid:one")


def test_browsers_get_error_pages_in_the_apis_vocabulary(web_server: Server) -> None:
    """Same status and code; HTML for a browser, problem+json for an API client; the OAuth
    endpoints keep RFC 6749 bodies whatever the Accept header says."""
    with web_server.client() as api:
        page = api.get("/me", headers=HTML)
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert 'id="error-code">missing_token<' in page.text
        assert page.headers["www-authenticate"].startswith("Bearer")
        assert page.headers["x-frame-options"] == "DENY"
        assert api.get("/me").json()["code"] == "missing_token"
        assert api.get("/nowhere", headers=HTML).headers["content-type"].startswith("text/html")
        oauth = api.post("/token", data={"grant_type": "nope"}, headers=HTML)
        assert oauth.json()["error"] == "unsupported_grant_type"


def test_sign_out_all_others_ends_their_access_tokens_and_keeps_this_page(
    web_server: Server,
) -> None:
    name = _name("erin")
    with web_server.client() as api:
        register(api, name)
        phone = login(api, name)
        with signed_in(web_server, name) as page:
            done = page.post(
                "/account/sign-out-others", data={"csrf_token": _csrf(page.get("/account").text)}
            )
            assert done.status_code == 303
            assert done.headers["location"] == "/account?done=others"
            assert api.get("/me", headers=bearer(phone)).status_code == 401
            assert refresh(api, phone["refresh_token"]).status_code == 400
            again = page.get("/account")
            assert again.status_code == 200
            assert again.text.count('class="card device') == 1
            assert "sign out all other devices" in again.text  # the audited revocation


def test_change_password_needs_the_current_one_and_signs_out_other_devices(
    web_server: Server,
) -> None:
    name, new = _name("frank"), "another horse battery"
    with web_server.client() as api:
        register(api, name)
        phone = login(api, name)
        with signed_in(web_server, name) as page:
            form = {"new_password": new, "new_password_again": new}
            wrong = page.post(
                "/account/password",
                data={
                    **form,
                    "current_password": "nope",
                    "csrf_token": _csrf(page.get("/account").text),
                },
            )
            assert wrong.status_code == 400
            assert "The current password is wrong." in wrong.text
            changed = page.post(
                "/account/password",
                data={**form, "current_password": PASSWORD, "csrf_token": _csrf(wrong.text)},
            )
            assert changed.headers["location"] == "/account?done=password"
            assert page.get("/account").status_code == 200  # this device stays
        assert api.get("/me", headers=bearer(phone)).status_code == 401
        assert login(api, name, new)["token_type"] == "bearer"
        old = api.post(
            "/token", data={"grant_type": "password", "username": name, "password": PASSWORD}
        )
        assert old.status_code == 401


def test_the_admin_console_escapes_hostile_text_and_exports_safe_csv(web_server: Server) -> None:
    """A reason typed into the console comes back as text in the page and as a
    non-formula cell in the CSV."""
    name = _name("gina")
    with web_server.client() as api:
        register(api, name)
        tokens = login(api, name)
    reason = '=HYPERLINK("http://x")<b>bold</b>'
    with signed_in(web_server, "root") as admin:
        listing = admin.get("/admin", params={"q": name})
        found = re.search(r'href="/admin/users/([0-9a-f]+)">' + re.escape(name), listing.text)
        assert found is not None
        page = admin.get(f"/admin/users/{found.group(1)}")
        done = admin.post(
            f"/admin/users/{found.group(1)}/revoke",
            data={"reason": reason, "csrf_token": _csrf(page.text)},
        )
        assert done.status_code == 200
        assert 'id="result-summary">1 user signed out everywhere' in done.text
        with web_server.client() as api:
            assert api.get("/me", headers=bearer(tokens)).status_code == 401
        audit = admin.get("/admin/audit", params={"text": "HYPERLINK"})
        assert "&lt;b&gt;bold&lt;/b&gt;" in audit.text
        assert "<b>bold" not in audit.text
        exported = admin.get("/admin/audit.csv", params={"text": "HYPERLINK"})
        assert exported.headers["content-disposition"].startswith("attachment")
        assert "'=HYPERLINK" in exported.text


def test_health_shows_the_bus_the_cache_and_the_kek_ids(web_server: Server) -> None:
    """SQLite without a bus: no bus, the cache bypassed, one primary KEK (the key file's)."""
    with signed_in(web_server, "root") as admin:
        page = admin.get("/admin/health")
    assert page.status_code == 200
    assert 'id="bus-kind">none<' in page.text
    assert 'id="cache-trust">bypassed' in page.text
    assert re.search(r"<code>[^<]+</code>: primary", page.text) is not None


def test_next_after_sign_in_stays_on_these_pages() -> None:
    assert safe_next("/admin/audit?kind=user") == "/admin/audit?kind=user"
    for hostile in ("https://evil.example/", "//evil.example", "/account//x", "/docs", None):
        assert safe_next(hostile) == "/account"


def test_csv_cells_never_start_a_formula() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "plain", None, 3)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "plain",
        "",
        "3",
    ]


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge 126 on Windows",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox 128 on Linux",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS",
        ),
        ("python-httpx/0.27.0", "httpx 0"),
        (None, "unknown device"),
        ("SomeBot/1.0 (+http://bot)", "SomeBot"),
    ],
)
def test_device_labels_are_readable(user_agent: str | None, label: str) -> None:
    assert device_label(user_agent) == label
