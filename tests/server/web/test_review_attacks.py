"""An attacker's review of the pages: each test is an attack that worked on the first
version of the pages (races forced with hooks between two steps, no sleeps).

In process (Starlette's TestClient against ``create_app``) where a hook has to run between
two steps of one request; each attack is checked by what it left behind (which password
works, which device is still signed in), not only by the status it got.
"""

from __future__ import annotations

import re
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from sjti.server.app import create_app
from sjti.server.services import Services
from sjti.server.settings import Settings
from sjti.server.users import get_by_name, set_role
from sjti.server.web import _session

with warnings.catch_warnings():  # it prefers httpx2; httpx is what this project has
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


# -- an in-process service and its clients -----------------------------------------------


@pytest.fixture
def app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FastAPI]:
    """The service; parametrized indirectly with a dict, settings for one test."""
    overrides: dict[str, Any] = {
        "login_max_failures": 10_000,
        "login_max_failures_per_ip": 10_000,
        "registrations_per_ip": 10_000,
        **getattr(request, "param", {}),
    }
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/web-review.db",
        key_file=str(tmp_path / "keys.json"),
        **overrides,
    )
    built = create_app(settings)
    with TestClient(built):  # the lifespan: services ready, closed after
        yield built


def services_of(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def register(app: FastAPI, name: str) -> None:
    made = TestClient(app).post("/users", json={"username": name, "password": PASSWORD})
    assert made.status_code == 201, made.text


def api_login(app: FastAPI, name: str, password: str = PASSWORD) -> int:
    """The status of a password grant on ``POST /token``."""
    return (
        TestClient(app)
        .post("/token", data={"grant_type": "password", "username": name, "password": password})
        .status_code
    )


def page(app: FastAPI, name: str, password: str = PASSWORD, agent: str = "browser") -> TestClient:
    """A browser signed in on the account page (cookies in the client's jar)."""
    client = TestClient(app, headers={**HTML, "User-Agent": agent}, follow_redirects=False)
    form = client.get("/account/signin")
    done = client.post(
        "/account/signin",
        data={"csrf_token": _csrf(form.text), "username": name, "password": password},
    )
    assert done.status_code == 303, done.text
    return client


def signed_in(client: TestClient) -> bool:
    """The account page answers (200), not a redirect to sign in."""
    answer = client.get("/account")
    assert answer.status_code in (200, 303), answer.text
    return answer.status_code == 200


def device_ids(client: TestClient) -> list[str]:
    return re.findall(r'data-device="([^"]+)"', client.get("/account").text)


def this_device(client: TestClient) -> str:
    text = client.get("/account").text
    found = re.search(r'data-device="([^"]+)">\s*<h3>[^<]*<span class="badge">this device', text)
    assert found is not None, "the page marks no device as this one"
    return found.group(1)


class Once:
    """Runs ``action`` the first time the wrapped callable is called (from any thread),
    before the call itself: a step of another request between two steps of this one."""

    def __init__(self, wrapped: Callable[..., Any], action: Callable[[], None]) -> None:
        self.wrapped, self.action = wrapped, action
        self.lock = threading.Lock()
        self.fired = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            fire, self.fired = not self.fired, True
        if fire:
            self.action()
        return self.wrapped(*args, **kwargs)


# -- 1. the password change commits after a revocation that should have stopped it ---------


def _change_password(client: TestClient, current: str, new: str) -> Any:
    return client.post(
        "/account/password",
        data={
            "csrf_token": _csrf(client.get("/account").text),
            "current_password": current,
            "new_password": new,
            "new_password_again": new,
        },
    )


@pytest.mark.parametrize(
    ("stolen", "victim_does"),
    [
        ("a device", "changes the password"),
        ("a device", "signs out everywhere"),
        ("the owner's cookies", "changes the password"),
    ],
)
def test_a_password_change_racing_a_revocation_never_commits(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, stolen: str, victim_does: str
) -> None:
    """The attacker (a page session of their own, or a copy of the owner's cookies, and
    the old password) changes the password. The owner, on their own device, changes it
    first, or signs out everywhere, while the attacker's request is between checking the
    current password and committing the new hash. That request must not commit: the
    owner's revocation ended its session, and the password it checked is no longer the
    password (with copied cookies the session is the owner's own, and stays live)."""
    name = _name("owner")
    owners_password, attackers_password = "owners new horse staple", "attacker owns it now"
    register(app, name)
    owner = page(app, name, agent="owner")
    if stolen == "a device":
        attacker = page(app, name, agent="attacker")
    else:
        attacker = TestClient(app, headers=HTML, follow_redirects=False)
        attacker.cookies = httpx.Cookies(owner.cookies)
    services = services_of(app)

    def owner_acts() -> None:
        if victim_does == "changes the password":
            done = _change_password(owner, PASSWORD, owners_password)
            assert done.headers["location"] == "/account?done=password"
        else:
            token = _csrf(owner.get("/account").text)
            done = owner.post("/account/sign-out-everywhere", data={"csrf_token": token})
            assert done.headers["location"] == "/account/signin?done=everywhere"

    # The attacker's request has checked the current password when it hashes the new one.
    monkeypatch.setattr(services.passwords, "hash", Once(services.passwords.hash, owner_acts))
    answer = _change_password(attacker, PASSWORD, attackers_password)

    assert answer.headers.get("location") != "/account?done=password"
    assert api_login(app, name, attackers_password) == 401, "the attacker's password was set"
    if victim_does == "changes the password":
        assert api_login(app, name, owners_password) == 200
        assert signed_in(owner), "the attacker's request signed the owner out"
    assert not signed_in(attacker)


# -- 2. a device signed out on the account page keeps its page session -------------------


def test_a_signed_out_device_loses_its_page_session_at_once(app: FastAPI) -> None:
    """Default (per-user) granularity: "sign out this device" ends the refresh family, and
    API access tokens of that device live on until they expire. A *page* session is that
    family: signed out, the page must ask to sign in again at once, and must not act
    (here: sign out every other device, the owner's included)."""
    name = _name("laptop")
    register(app, name)
    stolen = page(app, name, agent="stolen laptop")
    owner = page(app, name, agent="phone")
    laptop = this_device(stolen)
    token = _csrf(owner.get("/account").text)
    ended = owner.post(f"/account/devices/{laptop}/sign-out", data={"csrf_token": token})
    assert ended.headers["location"] == "/account?done=device"

    stale = _csrf(stolen.get("/account").text) if signed_in(stolen) else ""
    stolen.post("/account/sign-out-others", data={"csrf_token": stale})
    assert not signed_in(stolen), "the signed-out device still has a page session"
    assert signed_in(owner), "the signed-out device signed the owner out"


# -- 3. the incident's typed confirmation, skipped by posting the confirm form directly ----


def _admin(app: FastAPI) -> TestClient:
    name = _name("root")
    register(app, name)
    found = get_by_name(services_of(app).engine, name)
    assert found is not None
    set_role(services_of(app).engine, found.user.id, "admin")
    return page(app, name, agent="console")


def test_an_incident_revocation_needs_the_preview_it_confirms(app: FastAPI) -> None:
    """The console revokes a cohort only after its impact preview and a typed count. Posted
    directly (a script, a stale tab, a hand-edited form), the confirm form must not revoke:
    not a selection never previewed ("expected" 0, typed 0), and not one changed after
    its preview (same count typed, another cohort sent)."""
    bystander = _name("bystander")
    register(app, bystander)
    victim = page(app, bystander, agent="bystander")
    admin = _admin(app)
    csrf = _csrf(admin.get("/admin/incident").text)

    never_previewed = admin.post(
        "/admin/incident/confirm",
        data={"csrf_token": csrf, "role": "user", "expected": "0", "confirm": "0",
              "reason": "oops"},
    )  # fmt: skip
    assert never_previewed.status_code == 400, never_previewed.text
    assert signed_in(victim), "a cohort nobody previewed was revoked"

    found = get_by_name(services_of(app).engine, bystander)
    assert found is not None
    preview = admin.post(
        "/admin/incident/preview",
        data={"csrf_token": csrf, "ids": "no-such-user-1 " + found.user.id},
    )
    assert preview.status_code == 200
    assert 'id="impact-count">1<' in preview.text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', preview.text))
    swapped = admin.post(
        "/admin/incident/confirm",
        data={**form, "ids": "", "role": "user", "confirm": "1", "reason": "swapped"},
    )
    assert swapped.status_code == 400, swapped.text
    assert signed_in(victim), "a cohort other than the previewed one was revoked"

    confirmed = admin.post(
        "/admin/incident/confirm", data={**form, "confirm": "1", "reason": "the real one"}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert 'id="result-summary">1 user signed out everywhere' in confirmed.text
    assert not signed_in(victim)


# -- 4. the password change form as a way around the per-IP login lockout ----------------


@pytest.mark.parametrize("app", [{"login_max_failures_per_ip": 3}], indirect=True)
def test_password_guesses_on_the_account_page_count_against_the_client(app: FastAPI) -> None:
    """``POST /token`` locks a client out after ``LOGIN_MAX_FAILURES_PER_IP`` wrong
    passwords across accounts. The change-password form checks a password too: its wrong
    guesses must count against the client, and a locked-out client must not guess there."""
    name = _name("holder")
    register(app, name)
    stolen = page(app, name)  # a session, but not the password
    for guess in ("guess one!", "guess two!", "guess three!"):
        assert _change_password(stolen, guess, "whatever new pw 1").status_code == 400
    locked = _change_password(stolen, "guess four!", "whatever new pw 1")
    assert locked.status_code == 429, locked.text
    assert api_login(app, name) == 429, "the page's guesses did not count against the client"


# -- 5. a sibling host's post --------------------------------------------------------------


def test_posts_from_a_sibling_host_are_refused(app: FastAPI) -> None:
    """``Sec-Fetch-Site: same-site`` is another origin (a sibling subdomain), whose
    cookies can reach this host without the __Host- prefix: refused like cross-site."""
    name = _name("sibling")
    register(app, name)
    client = page(app, name)
    token = _csrf(client.get("/account").text)
    refused = client.post(
        "/account/sign-out-everywhere",
        data={"csrf_token": token},
        headers={"Sec-Fetch-Site": "same-site"},
    )
    assert refused.status_code == 403
    assert 'id="error-code">invalid_csrf_token<' in refused.text
    assert signed_in(client)
    own = client.post(
        "/account/sign-out-everywhere",
        data={"csrf_token": token},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert own.headers["location"] == "/account/signin?done=everywhere"
    assert not signed_in(client)


# -- checked and sound: kept as regression tests -------------------------------------------


@pytest.mark.parametrize("when", ["after the refresh committed", "after it was verified"])
def test_sign_out_everywhere_during_a_page_refresh_leaves_nothing_alive(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A page whose access token expired refreshes it on load (the grant of ``/token``).
    The owner signs out everywhere from another device between that refresh and the
    page's answer: whatever the page then holds must not work."""
    name = _name("tabs")
    register(app, name)
    browser = page(app, name, agent="browser")
    other = page(app, name, agent="phone")
    browser.cookies.delete("sjti-access")  # expired: the next page refreshes

    def sign_out_everywhere() -> None:
        token = _csrf(other.get("/account").text)
        done = other.post("/account/sign-out-everywhere", data={"csrf_token": token})
        assert done.headers["location"] == "/account/signin?done=everywhere"

    if when == "after the refresh committed":
        real_refresh = _session.refresh_grant

        def refresh_then_logout(*args: Any) -> Any:
            tokens = real_refresh(*args)
            sign_out_everywhere()
            return tokens

        monkeypatch.setattr(_session, "refresh_grant", refresh_then_logout)
    else:
        real_verify = _session.verify_access_token
        seen: list[int] = []

        def verify_then_logout(*args: Any) -> Any:
            verified = real_verify(*args)
            if not seen:
                seen.append(1)
                sign_out_everywhere()
            return verified

        monkeypatch.setattr(_session, "verify_access_token", verify_then_logout)
    browser.get("/account")
    monkeypatch.undo()
    assert not signed_in(browser), "a page session outlived sign out everywhere"
    assert not signed_in(other)


def test_no_one_acts_on_another_users_device_or_in_the_console_without_the_role(
    app: FastAPI,
) -> None:
    """Device ids are scoped to their owner (404, the device stays), and every console
    action, posted directly with a valid CSRF token of the poster's own session, is 403."""
    alice, mallory = _name("alice"), _name("mallory")
    register(app, alice)
    register(app, mallory)
    victim = page(app, alice)
    attacker = page(app, mallory)
    token = _csrf(attacker.get("/account").text)
    theirs = this_device(victim)
    refused = attacker.post(f"/account/devices/{theirs}/sign-out", data={"csrf_token": token})
    assert refused.status_code == 404
    found = get_by_name(services_of(app).engine, alice)
    assert found is not None
    for path, form in (
        (f"/admin/users/{found.user.id}/revoke", {"reason": "x"}),
        ("/admin/incident/preview", {"ids": found.user.id}),
        ("/admin/incident/confirm", {"ids": found.user.id, "expected": "1", "confirm": "1",
                                     "reason": "x"}),
    ):  # fmt: skip
        answer = attacker.post(path, data={"csrf_token": token, **form})
        assert answer.status_code == 403, path
        assert 'id="error-code">insufficient_scope<' in answer.text
    for path in ("/admin", "/admin/audit.csv", "/admin/health", f"/admin/users/{found.user.id}"):
        assert attacker.get(path).status_code == 403, path
    assert signed_in(victim)
    assert theirs in device_ids(victim)


def test_sign_in_replaces_the_csrf_secret_chosen_before_it(app: FastAPI) -> None:
    """Session fixation of the CSRF secret: a secret planted before sign-in (a sibling
    host over plain HTTP can set cookies) is replaced by sign-in, so the planter cannot
    compute the signed-in session's form tokens."""
    name = _name("fixed")
    register(app, name)
    client = TestClient(app, headers=HTML, follow_redirects=False)
    planted = "p" * 43
    client.cookies.set("sjti-csrf", planted)
    form = client.get("/account/signin")
    done = client.post(
        "/account/signin",
        data={"csrf_token": _csrf(form.text), "username": name, "password": PASSWORD},
    )
    assert done.status_code == 303
    fresh = [c for c in done.headers.get_list("set-cookie") if c.startswith("sjti-csrf=")]
    assert len(fresh) == 1
    assert planted not in fresh[0]
    refused = client.post(
        "/account/sign-out-everywhere",
        data={"csrf_token": _csrf(form.text)},  # the pre-sign-in token under the old secret
    )
    assert refused.status_code == 403
    assert signed_in(client)


def test_an_uploaded_id_file_is_bounded_and_read_as_text(app: FastAPI) -> None:
    """The incident's id file: a spreadsheet's export (UTF-8 with a byte order mark, CRLF
    lines) is read as its ids; bytes that are not UTF-8 are refused with a 400, not a 500;
    a file over the body limit is refused before anything reads it."""
    name = _name("listed")
    register(app, name)
    assert api_login(app, name) == 200  # a user with tokens (a key) to revoke
    found = get_by_name(services_of(app).engine, name)
    assert found is not None
    admin = _admin(app)
    csrf = _csrf(admin.get("/admin/incident").text)

    def preview(content: bytes) -> Any:
        return admin.post(
            "/admin/incident/preview",
            data={"csrf_token": csrf},
            files={"ids_file": ("ids.csv", content, "text/csv")},
        )

    exported = preview(b"\xef\xbb\xbf" + found.user.id.encode() + b"\r\nno-such-user\r\n")
    assert exported.status_code == 200, exported.text
    assert 'id="impact-count">1<' in exported.text
    latin1 = preview(b"caf\xe9\n")
    assert latin1.status_code == 400
    assert 'id="error-code">invalid_request<' in latin1.text
    huge = preview(b"a" * (services_of(app).settings.max_body_bytes + 1))
    assert huge.status_code == 413
