"""`sjti kek rotate`: rewrap under the new KEK, --dry-run, exact outputs, no key material."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from sjti import Kek, KekRing
from sjti.cli._kek_cmds import kek_rotate
from sjti.stores.sql import SqlSecretStore

from .conftest import seed_users

USERS = ["alice", "bob", "carol"]


def build_root() -> typer.Typer:
    """Registered the way ``sjti.cli._app`` registers it: ``kek_app.command("rotate")``."""
    root = typer.Typer()
    kek_app = typer.Typer()
    kek_app.command("rotate")(kek_rotate)
    root.add_typer(kek_app, name="kek")
    return root


@pytest.fixture
def kek_root() -> typer.Typer:
    return build_root()


@pytest.fixture
def rotated(kek_config: str) -> KekRing:
    """A new KEK first, the old one (which the seeded secrets use) after it."""
    return KekRing([Kek.generate("kek-2"), *KekRing.from_config(kek_config).keks])


def keys_of(db_url: str, ring: KekRing) -> dict[str, bytes | None]:
    store = SqlSecretStore(sa.create_engine(db_url), ring)
    try:
        return {user_id: store.load_secret(user_id) for user_id in USERS}
    finally:
        store.engine.dispose()


def assert_no_key_material(ring: KekRing, *texts: str) -> None:
    for entry in ring.to_config().split(","):
        encoded = entry.partition(":")[2]
        for text in texts:
            assert encoded not in text


def test_dry_run_counts_and_changes_nothing(
    runner: CliRunner, kek_root: typer.Typer, db_url: str, kek_config: str, rotated: KekRing
) -> None:
    seed_users(db_url, kek_config, USERS)
    before = keys_of(db_url, rotated)
    result = runner.invoke(
        kek_root,
        ["kek", "rotate", "--dry-run", "--database-url", db_url],
        env={"SJTI_KEK": rotated.to_config()},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "would move 3 secrets to KEK kek-2 (dry run, nothing changed)\n"
        "under KEK kek-1: 3 secrets (would move)\n"
    )
    assert result.stderr == ""
    assert keys_of(db_url, KekRing.from_config(kek_config)) == before  # still under kek-1
    assert_no_key_material(rotated, result.stdout, result.stderr)


def test_rotate_moves_everything_keeps_keys_and_says_the_old_kek_can_go(
    runner: CliRunner, kek_root: typer.Typer, db_url: str, kek_config: str, rotated: KekRing
) -> None:
    seed_users(db_url, kek_config, USERS)
    before = keys_of(db_url, rotated)
    env = {"SJTI_KEK": rotated.to_config(), "SJTI_ACTOR": "ops@example.com"}
    args = ["kek", "rotate", "--batch-size", "2", "--database-url", db_url]
    result = runner.invoke(kek_root, args, env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "moved 3 secrets to KEK kek-2\n"
        "under KEK kek-1: 0 secrets; it can now be dropped from SJTI_KEK\n"
    )
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    assert_no_key_material(rotated, result.stdout, result.stderr)
    new_only = KekRing([rotated.primary])
    assert keys_of(db_url, new_only) == before  # same user keys: nobody logged out
    store = SqlSecretStore(sa.create_engine(db_url), new_only)
    audit = store.audit_log()
    store.engine.dispose()
    assert [(r.kind, r.count, r.actor, r.detail) for r in audit] == [
        ("kek_rewrap", 1, "ops@example.com", "to kek kek-2"),
        ("kek_rewrap", 2, "ops@example.com", "to kek kek-2"),
    ]

    again = runner.invoke(kek_root, args, env=env)
    assert again.exit_code == 0, again.output
    assert again.stdout == (
        "moved 0 secrets to KEK kek-2\n"
        "under KEK kek-1: 0 secrets; it can now be dropped from SJTI_KEK\n"
    )


def test_a_secret_under_a_kek_missing_from_the_ring_is_exit_1(
    runner: CliRunner, kek_root: typer.Typer, db_url: str, kek_config: str, rotated: KekRing
) -> None:
    """The old KEK left out of SJTI_KEK too early: fail closed, name no user, no key."""
    seed_users(db_url, kek_config, USERS)
    new_only = KekRing([rotated.primary])
    result = runner.invoke(
        kek_root,
        ["kek", "rotate", "--database-url", db_url],
        env={"SJTI_KEK": new_only.to_config()},
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: a stored secret does not open with any KEK in SJTI_KEK (a KEK missing from "
        "the ring, or a corrupted row); 0 secrets moved before it, its batch changed nothing\n"
    )
    assert not any(user in result.stderr for user in USERS)
    assert_no_key_material(rotated, result.stderr)
    assert keys_of(db_url, KekRing.from_config(kek_config)) == keys_of(db_url, rotated)


def test_dry_run_warns_about_secrets_under_an_unknown_kek(
    runner: CliRunner, kek_root: typer.Typer, db_url: str, kek_config: str, rotated: KekRing
) -> None:
    seed_users(db_url, kek_config, USERS)
    result = runner.invoke(
        kek_root,
        ["kek", "rotate", "--dry-run", "--database-url", db_url],
        env={"SJTI_KEK": KekRing([rotated.primary]).to_config()},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "would move 3 secrets to KEK kek-2 (dry run, nothing changed)\n"
    assert result.stderr == "warning: 3 secrets under a KEK that is not in SJTI_KEK\n"


def test_missing_kek_and_missing_database_are_one_line_errors(
    runner: CliRunner, kek_root: typer.Typer, tmp_path: pytest.TempPathFactory
) -> None:
    no_kek = runner.invoke(kek_root, ["kek", "rotate"], env={"SJTI_KEK": None})
    assert no_kek.exit_code == 1
    assert no_kek.stderr == ("error: SJTI_KEK is not set (the KEK ring: 'kid:base64url-key,...')\n")
    url = f"sqlite:///{tmp_path}/absent.db"
    no_db = runner.invoke(kek_root, ["kek", "rotate", "--database-url", url])
    assert no_db.exit_code == 1
    assert (
        no_db.stderr
        == f"error: no database file {tmp_path}/absent.db: run 'sjti db upgrade' first\n"
    )


def test_progress_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, db_url: str, kek_config: str, rotated: KekRing
) -> None:
    """On a terminal the bar is drawn on stderr (total = secrets to move), keys never."""
    import io

    from rich.console import Console

    from sjti.cli import _kek_cmds

    seed_users(db_url, kek_config, USERS)
    screen = io.StringIO()
    monkeypatch.setattr(_kek_cmds, "err_console", Console(file=screen, force_terminal=True))
    monkeypatch.setenv("SJTI_KEK", rotated.to_config())
    result = _kek_cmds.rotate_kek(db_url, batch_size=1, show_progress=True)
    assert (result.moved, result.remaining, result.unknown) == (3, {"kek-1": 0}, 0)
    assert "rewrapping" in screen.getvalue()
    assert_no_key_material(rotated, screen.getvalue())
