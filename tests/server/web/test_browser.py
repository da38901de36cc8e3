"""The account page and the admin console in a real browser (headless Chromium).

Each test drives the pages the way a person does (labels, buttons, keyboard) against a
real ``sjti serve`` process, checks the outcome through the API as well (a device's
refresh token refused, an old cookie refused), and saves a screenshot.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from sjti.server.passwords import Passwords
from sjti.server.users import create_user

from ..harness import ADMIN, PASSWORD, Server, bearer, login, refresh, register

pytestmark = pytest.mark.browser


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page; any JS dialog fails the test."""
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield opened
    context.close()
    assert dialogs == [], f"a script ran and opened a dialog: {dialogs}"


def sign_in(page: Any, server: Server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/account")
    assert page.url.startswith(f"{server.url}/account/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(account|admin)(\?.*)?$"))


def shot(page: Any, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def test_sign_in_shows_both_devices_and_marks_this_one(
    web_server: Server, page: Any, screenshots: Path
) -> None:
    """Sign in with the keyboard; the phone signed in through the API is listed too."""
    name = _name("alice")
    with web_server.client() as api:
        register(api, name)
        login(api, name, **{"User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile"})
    page.goto(f"{web_server.url}/account")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web_server.url}/account")
    devices = page.locator("li.device")
    assert devices.count() == 2
    current = page.locator("li.device.current")
    assert current.count() == 1
    assert "this device" in current.inner_text()
    assert "Chrome 126 on Android" in page.locator("li.device:not(.current)").inner_text()
    assert page.locator(".username").first.inner_text() == name
    shot(page, screenshots, "account")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the account page scrolls sideways at phone width"
    shot(page, screenshots, "account-phone")


def test_signing_out_the_other_device_refuses_its_next_refresh(
    web_server: Server, page: Any, screenshots: Path
) -> None:
    name = _name("bob")
    with web_server.client() as api:
        register(api, name)
        phone = login(api, name, **{"User-Agent": "curl/8.5.0"})
        sign_in(page, web_server, name)
        other = page.locator("li.device:not(.current)")
        assert "curl 8" in other.inner_text()
        other.get_by_role("button", name="Sign out this device").click()
        page.wait_for_url(f"{web_server.url}/account?done=device")
        assert page.get_by_role("status").inner_text() == "That device is signed out."
        assert page.locator("li.device").count() == 1
        assert refresh(api, phone["refresh_token"]).status_code == 400
    shot(page, screenshots, "account-device-signed-out")


def test_signing_out_everywhere_ends_the_pages_own_session(
    web_server: Server, page: Any, screenshots: Path
) -> None:
    """Not just the cookies: the old cookies, put back, are refused by the server."""
    name = _name("carol")
    with web_server.client() as api:
        register(api, name)
        phone = login(api, name)
        sign_in(page, web_server, name)
        kept = page.context.cookies()
        page.get_by_role("button", name="Sign out everywhere").click()
        page.wait_for_url(re.compile(r"/account/signin"))
        assert "signed out everywhere" in page.get_by_role("status").inner_text()
        assert api.get("/me", headers=bearer(phone)).status_code == 401
        assert refresh(api, phone["refresh_token"]).status_code == 400

    page.context.add_cookies(kept)  # a stolen copy of the page's cookies
    page.goto(f"{web_server.url}/account")
    assert page.url.startswith(f"{web_server.url}/account/signin")
    assert page.get_by_role("heading", name="Sign in").is_visible()
    shot(page, screenshots, "signed-out-everywhere")


def test_admin_previews_a_cohort_confirms_and_sees_the_audit_row(
    web_server: Server, page: Any, screenshots: Path
) -> None:
    tenant = _name("acme")
    victims = [_name("v"), _name("v")]
    with web_server.client() as api:
        tokens = []
        for victim in victims:
            created = web_server.cli(
                "users", "create", victim, "--tenant", tenant, "--password-stdin", stdin=PASSWORD
            )
            assert created.returncode == 0, created.stderr
            tokens.append(login(api, victim))
        sign_in(page, web_server, ADMIN)
        page.get_by_role("link", name="Incident").click()
        page.get_by_label("Tenant").fill(tenant)
        page.get_by_role("button", name="Preview the impact").click()
        page.wait_for_url(f"{web_server.url}/admin/incident/preview")
        assert page.locator("#impact-count").inner_text() == "2"
        assert sorted(page.locator("#impact-sample a").all_inner_texts()) == sorted(victims)
        assert tenant in page.locator("section", has_text="By tenant").inner_text()
        shot(page, screenshots, "admin-preview")
        for t in tokens:  # a dry run changed nothing
            assert api.get("/me", headers=bearer(t)).status_code == 200

        reason = f"incident {secrets.token_hex(3)}: leaked laptop"
        page.get_by_label("Reason").fill(reason)
        page.get_by_label("Type 2 to confirm").fill("2")
        page.get_by_role("button", name="Revoke 2 users").click()
        page.wait_for_url(f"{web_server.url}/admin/incident/confirm")
        summary = page.locator("#result-summary").inner_text()
        assert summary.startswith("2 users signed out everywhere")
        assert re.fullmatch(r"\d+", page.locator("#result-event").inner_text())
        shot(page, screenshots, "admin-result")
        for t in tokens:
            assert api.get("/me", headers=bearer(t)).status_code == 401
            assert refresh(api, t["refresh_token"]).status_code == 400

    page.get_by_role("link", name="See the audit trail").click()
    row = page.locator("#audit tbody tr", has_text=reason)
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[2] == f"admin:{ADMIN}"
    assert cells[4:6] == ["cohort", "2"]
    assert f"tenant={tenant}" in cells[6]
    shot(page, screenshots, "admin-audit")


def test_a_user_without_the_admin_role_gets_403_at_admin(
    web_server: Server, page: Any, screenshots: Path
) -> None:
    name = _name("mallory")
    with web_server.client() as api:
        register(api, name)
    sign_in(page, web_server, name)
    assert page.get_by_role("link", name="Incident").count() == 0
    answer = page.goto(f"{web_server.url}/admin")
    assert answer is not None
    assert answer.status == 403
    assert page.locator("#error-code").inner_text() == "insufficient_scope"
    shot(page, screenshots, "admin-403")


def test_forged_csrf_posts_are_refused(web_server: Server, page: Any, screenshots: Path) -> None:
    """A cross-site form, and a same-site post with a wrong token: neither signs out."""
    name = _name("dave")
    with web_server.client() as api:
        register(api, name)
    sign_in(page, web_server, name)
    attacker = "http://attacker.invalid/"
    page.route(
        attacker,
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form method="post" action="{web_server.url}/account/sign-out-everywhere">'
                '<input type="hidden" name="csrf_token" value="guessed">'
                '<button type="submit">Win a prize</button></form>'
            ),
        ),
    )
    page.goto(attacker)
    page.get_by_role("button", name="Win a prize").click()
    page.wait_for_load_state()
    assert not page.url.startswith(f"{web_server.url}/account?")
    page.goto(f"{web_server.url}/account")
    assert page.url == f"{web_server.url}/account", "the forged post ended the session"

    page.locator("form[action='/account/sign-out-everywhere'] input[name=csrf_token]").evaluate(
        "input => { input.value = 'forged-token' }"
    )
    with page.expect_response(re.compile(r"/account/sign-out-everywhere$")) as posted:
        page.get_by_role("button", name="Sign out everywhere").click()
    assert posted.value.status == 403
    assert page.locator("#error-code").inner_text() == "invalid_csrf_token"
    shot(page, screenshots, "csrf-refused")
    page.goto(f"{web_server.url}/account")
    assert page.url == f"{web_server.url}/account"


def test_a_script_username_and_user_agent_render_inert(
    web_server: Server, page: Any, screenshots: Path
) -> None:
    """Registration refuses such names; the database may hold one anyway (an import, an
    older release): the page shows it as text, and no script runs."""
    hostile = f"<script>alert('{secrets.token_hex(2)}')</script>"
    engine = create_engine(f"sqlite:///{web_server.workdir / 'sjti.db'}")
    try:
        create_user(engine, hostile, Passwords().hash(PASSWORD), role="user", tenant=None)
    finally:
        engine.dispose()
    ua = '"><img src=x onerror="alert(1)">'
    with web_server.client() as api:
        login(api, hostile, **{"User-Agent": ua})
    sign_in(page, web_server, hostile)
    assert page.locator(".username").first.inner_text() == hostile
    assert page.locator(".ua", has_text=ua).count() == 1
    assert page.locator("img").count() == 0
    scripts = page.locator("script").evaluate_all("nodes => nodes.map(n => n.src)")
    assert scripts == [f"{web_server.url}/static/web/web.js"]
    shot(page, screenshots, "hostile-username")
