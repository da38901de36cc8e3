"""`sjti users`: the service's users, operated with the service's own settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sjti.cli._users_cmds import app as users_app
from sjti.server.services import Services
from sjti.server.settings import Settings
from sjti.server.users import find_user

PASSWORD = "correct horse battery"


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment `sjti serve` would run with, in a fresh directory."""
    for name in ("SJTI_KEK", "SJTI_REDIS_URL", "SJTI_ENV"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "SJTI_DATABASE_URL": f"sqlite:///{tmp_path / 'sjti.db'}",
        "SJTI_KEY_FILE": str(tmp_path / "sjti-keys.json"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(users_app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_create_admin_then_list_and_show(service_env: dict[str, str]) -> None:
    """The first admin is made here, and shows up where the service will look."""
    code, out, err = invoke("create", "Root", "--admin", "--password-stdin", stdin=PASSWORD)
    assert code == 0, err
    assert out.startswith("root  id=")
    assert out.rstrip().endswith("role=admin")
    code, out, _ = invoke("list", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert (listed["username"], listed["role"], listed["disabled"]) == ("root", "admin", False)
    code, out, _ = invoke("show", listed["id"], "--json")
    assert json.loads(out)["username"] == "root"


def test_duplicate_weak_and_unknown_are_clear_errors(service_env: dict[str, str]) -> None:
    """Exit 1 with one line, never a traceback."""
    assert invoke("create", "alice", "--password-stdin", stdin=PASSWORD)[0] == 0
    code, _, err = invoke("create", "ALICE", "--password-stdin", stdin=PASSWORD)
    assert (code, "is taken" in err) == (1, True)
    code, _, err = invoke("create", "bob", "--password-stdin", stdin="short")
    assert (code, "at least 10 characters" in err) == (1, True)
    code, _, err = invoke("set-role", "alice", "root")
    assert (code, "role must be one of: user, admin" in err) == (1, True)
    code, _, err = invoke("show", "nobody")
    assert (code, "no user 'nobody'" in err) == (1, True)


def test_set_role_and_disable_reach_the_service(service_env: dict[str, str]) -> None:
    """A role given here is what the service checks; a disabled user is locked out and
    every token refused at once, audited."""
    assert invoke("create", "carol", "--password-stdin", stdin=PASSWORD)[0] == 0
    code, out, _ = invoke("set-role", "carol", "admin")
    assert (code, out) == (0, "carol is now admin\n")
    services = Services.build(Settings.load())
    try:
        user = find_user(services.engine, "carol")
        assert user is not None
        assert user.role == "admin"
        services.store.ensure(user.id)
        code, out, err = invoke("disable", "carol", "--reason", "left")
        assert code == 0, err
        assert "disabled; 0 refresh session(s) ended" in out
        disabled = find_user(services.engine, "carol")
        assert disabled is not None
        assert disabled.disabled_at is not None
        [record] = services.store.audit_log()
        assert (record.reason, record.count) == ("left", 1)
        code, _, err = invoke("disable", "carol")
        assert (code, "already disabled" in err) == (1, True)
    finally:
        services.close()


def test_admin_usernames_is_refused_with_the_way_out(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old race (first to register a listed name became admin) cannot come back."""
    monkeypatch.setenv("SJTI_ADMIN_USERNAMES", "admin")
    code, _, err = invoke("list")
    assert code == 1
    assert "sjti users create NAME --admin" in err
