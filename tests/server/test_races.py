"""Every interleaving of a token grant with a revocation, forced deterministically.

The grant (the attacker's refresh, or a password login) is paused before each of its SQL
statements in turn; while it waits there, the revocation (logout, admin ids, admin
cohort, reuse detection) runs to completion, or until it blocks on the grant's locks;
then the grant resumes. Whatever the point, once the revocation has returned nothing the
grant produced may be accepted: not its access token, not its refresh token.

On the first-generation service (grant = rotate, then load the user, then read the key,
each in its own transaction; logout = rotate the key, then revoke the refresh families)
several points let a revoked session live on; these tests fail there.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import HTTPException, Response

from sjti import RevokedTokenError, TokenError
from sjti.server.auth import Principal, verify_access_token
from sjti.server.models import CohortIn, NewUser, RevocationIn
from sjti.server.routes import admin, auth, me
from sjti.server.services import Services
from sjti.server.settings import Settings
from sjti.server.users import set_role

PASSWORD = "correct horse battery"
BLOCKED_FOR = 0.2  # how long a revocation may wait on the grant's locks before we resume


class Pause:
    """Stops one thread before its ``n``-th SQL statement until released."""

    def __init__(self, engine: sa.Engine, n: int) -> None:
        self.engine, self.n, self.seen = engine, n, 0
        self.thread: int | None = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def _before(self, *_: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        self.seen += 1
        if self.seen == self.n:
            self.reached.set()
            self.release.wait(30)

    @contextmanager
    def installed(self) -> Iterator[Pause]:
        sa.event.listen(self.engine, "before_cursor_execute", self._before)
        try:
            yield self
        finally:
            sa.event.remove(self.engine, "before_cursor_execute", self._before)
            self.release.set()


class Outcome:
    """What a thread's call returned or raised."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def run(call: Callable[[], Any], pause: Pause | None = None) -> tuple[threading.Thread, Outcome]:
    outcome = Outcome()

    def body() -> None:
        if pause is not None:
            pause.thread = threading.get_ident()
        try:
            outcome.value = call()
        except BaseException as exc:  # recorded for the assertions
            outcome.error = exc
        finally:
            outcome.done.set()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture(params=["sqlite", "postgres"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/races.db"
    else:
        request.applymarker(pytest.mark.service)
        url = request.getfixturevalue("postgres_url")
    settings = Settings(
        database_url=url,
        key_file=str(tmp_path / "keys.json"),
        login_max_failures=10_000,
        login_max_failures_per_ip=10_000,
        registrations_per_ip=10_000,
    )
    built = Services.build(settings)
    assert built.wait_ready(10)
    yield built
    built.close()


def register_and_login(services: Services, name: str) -> tuple[str, dict[str, Any]]:
    """A user and a fresh session (password grant), through the real route functions."""
    auth.register(NewUser(username=name, password=PASSWORD), services, client_request())
    tokens = password_grant(services, name)
    _, user = verify_access_token(services, tokens["access_token"])
    return user.id, tokens


def client_request(host: str | None = None) -> Any:
    """What the routes read of a request: the client address and the headers."""
    client = None if host is None else type("C", (), {"host": host})()
    return type("R", (), {"client": client, "headers": {}})()


def password_grant(services: Services, name: str) -> dict[str, Any]:
    out = auth.password_grant(services, client_request(), Response(), name, PASSWORD)
    return out.model_dump()


def refresh_grant(services: Services, token: str) -> dict[str, Any]:
    return auth.refresh_grant(services, Response(), token).model_dump()


def principal(services: Services, tokens: dict[str, Any]) -> Principal:
    claims, user = verify_access_token(services, tokens["access_token"])
    return Principal(claims, user)


def assert_revoked(services: Services, minted: dict[str, Any]) -> None:
    """Neither token from the grant may work once the revocation returned."""
    with pytest.raises(RevokedTokenError):
        verify_access_token(services, minted["access_token"])
    with pytest.raises(HTTPException) as refused:
        refresh_grant(services, minted["refresh_token"])
    assert refused.value.status_code == 400


def rounds(
    services: Services,
    setup: Callable[[int], tuple[Callable[[], dict[str, Any]], Callable[[], object]]],
    *,
    limit: int = 40,
    fresh_at_first: bool = False,
) -> list[str]:
    """For n = 1, 2, ...: pause the grant at statement n, revoke there, resume, check.

    ``fresh_at_first``: paused before its first statement, the grant has read nothing yet,
    so it is simply later than the revocation (a password login after a logout is a new
    login, and its tokens must work).
    """
    endings: list[str] = []
    for n in range(1, limit + 1):
        grant, revoke = setup(n)
        pause = Pause(services.engine, n)
        with pause.installed():
            grant_thread, granted = run(grant, pause)
            while not (pause.reached.is_set() or granted.done.is_set()):
                pause.reached.wait(0.01)
            if granted.done.is_set() and not pause.reached.is_set():
                return endings  # the grant ran fewer than n statements: every point tried
            revoke_thread, revoked = run(revoke)
            # Before the grant's first statement it holds nothing: the revocation must run
            # to its end. Later it may block on the grant's lock: give it a moment.
            revoked.done.wait(30 if n == 1 else BLOCKED_FOR)
            pause.release.set()
            grant_thread.join(30)
            revoke_thread.join(30)
        assert revoked.error is None, f"n={n}: the revocation failed: {revoked.error!r}"
        if fresh_at_first and n == 1:
            assert granted.error is None, repr(granted.error)
            verify_access_token(services, granted.value["access_token"])
            endings.append("1:after")
        elif granted.error is None:
            assert_revoked(services, granted.value)
            endings.append(f"{n}:minted-then-revoked")
        else:
            assert isinstance(granted.error, HTTPException | TokenError), repr(granted.error)
            endings.append(f"{n}:refused")
    pytest.fail(f"the grant ran more than {limit} statements")


def test_refresh_racing_logout_never_outlives_it(services: Services) -> None:
    """The stolen refresh token in a loop vs the victim's logout, at every step."""

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        _, tokens = register_and_login(services, f"victim-{n}-{secrets.token_hex(3)}")
        victim = principal(services, tokens)
        return (
            lambda: refresh_grant(services, tokens["refresh_token"]),
            lambda: me.logout(victim, services),
        )

    endings = rounds(services, setup)
    assert len(endings) >= 4  # the grant has several steps: each was a race point


def test_refresh_racing_admin_revocation_by_ids(services: Services) -> None:
    """Incident response by ids: the same promise."""
    _, root = register_and_login(services, f"root-{secrets.token_hex(4)}")
    set_role(services.engine, principal(services, root).user.id, "admin")
    admin_principal = principal(services, root)

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        user_id, tokens = register_and_login(services, f"ids-{n}-{secrets.token_hex(3)}")
        body = RevocationIn(user_ids=[user_id], reason="race test")
        return (
            lambda: refresh_grant(services, tokens["refresh_token"]),
            lambda: admin.revoke(body, admin_principal, services),
        )

    assert len(rounds(services, setup)) >= 4


def test_refresh_racing_cohort_revocation(services: Services) -> None:
    """A cohort (every user created before now) revoked while a refresh runs."""
    _, root = register_and_login(services, f"root-{secrets.token_hex(4)}")
    set_role(services.engine, principal(services, root).user.id, "admin")
    admin_principal = principal(services, root)

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        _, tokens = register_and_login(services, f"cohort-{n}-{secrets.token_hex(3)}")
        body = RevocationIn(cohort=CohortIn(role="user"), reason="race test")
        return (
            lambda: refresh_grant(services, tokens["refresh_token"]),
            lambda: admin.revoke(body, admin_principal, services),
        )

    assert len(rounds(services, setup)) >= 4


def test_refresh_racing_reuse_detection(services: Services) -> None:
    """The thief refreshes while the victim's client replays an old token (reuse)."""

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        _, first = register_and_login(services, f"reuse-{n}-{secrets.token_hex(3)}")
        current = refresh_grant(services, first["refresh_token"])  # `first` is now used

        def replay() -> object:
            with pytest.raises(HTTPException) as reuse:
                refresh_grant(services, first["refresh_token"])
            assert "reused" in str(reuse.value.detail)
            return reuse

        return (lambda: refresh_grant(services, current["refresh_token"]), replay)

    assert len(rounds(services, setup)) >= 4


def test_password_grant_racing_logout(services: Services) -> None:
    """A login that started before a logout committed gets no token that outlives it."""

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        name = f"login-{n}-{secrets.token_hex(3)}"
        _, tokens = register_and_login(services, name)
        victim = principal(services, tokens)
        return (lambda: password_grant(services, name), lambda: me.logout(victim, services))

    assert len(rounds(services, setup, fresh_at_first=True)) >= 3
