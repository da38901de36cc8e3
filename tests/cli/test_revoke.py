"""`sjti revoke`: by id, by file in batches, by cohort; --dry-run; exact outputs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from .conftest import seed_users, store_for


def keys_of(db_url: str, kek_config: str, user_ids: list[str]) -> dict[str, bytes | None]:
    store = store_for(db_url, kek_config)
    try:
        return {user_id: store.load_secret(user_id) for user_id in user_ids}
    finally:
        store.engine.dispose()


def test_dry_run_lists_ids_and_changes_nothing(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """A dry run prints who would be revoked; keys and audit trail stay as they were."""
    seed_users(db_url, kek_config, ["alice", "bob"])
    before = keys_of(db_url, kek_config, ["alice", "bob"])
    result = runner.invoke(
        root,
        [
            "revoke",
            "-u",
            "bob",
            "-u",
            "alice",
            "-u",
            "nobody",
            "--dry-run",
            "--database-url",
            db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "would revoke 2 users (dry run, nothing changed)\nalice\nbob\n"
    assert keys_of(db_url, kek_config, ["alice", "bob"]) == before
    store = store_for(db_url, kek_config)
    assert store.audit_log() == []
    store.engine.dispose()


def test_revoke_users_rotates_only_their_keys_and_audits(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """Only the named users lose their tokens; the audit row keeps actor and reason."""
    seed_users(db_url, kek_config, ["alice", "bob", "carol"])
    before = keys_of(db_url, kek_config, ["alice", "bob", "carol"])
    result = runner.invoke(
        root,
        [
            "revoke", "--user", "alice", "--user", "bob", "--json", "--database-url", db_url,
            "--actor", "ops@example.com", "--reason", "lost laptop",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "dry_run": False,
        "count": 2,
        "user_ids": ["alice", "bob"],
        "truncated": False,
        "audit_ids": [1],
        "event_ids": [1],
    }
    after = keys_of(db_url, kek_config, ["alice", "bob", "carol"])
    assert [before[u] != after[u] for u in ("alice", "bob", "carol")] == [True, True, False]
    store = store_for(db_url, kek_config)
    [record] = store.audit_log()
    store.engine.dispose()
    assert (record.actor, record.reason, record.count) == ("ops@example.com", "lost laptop", 2)


def test_unknown_single_user_is_exit_1(runner: CliRunner, root: typer.Typer, db_url: str) -> None:
    """A typo in the one id given must not look like success."""
    for extra in ([], ["--dry-run"]):
        result = runner.invoke(root, ["revoke", "--user", "bob", *extra, "--database-url", db_url])
        assert result.exit_code == 1
        assert result.stderr == "error: unknown user 'bob'\n"


def test_file_with_2500_ids_revokes_in_batches(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str, tmp_path: Path
) -> None:
    """Large id files go through revoke_many in batches of 1000, one audit row each."""
    ids = [f"user-{n:04d}" for n in range(2500)]
    seed_users(db_url, kek_config, ids)
    before = keys_of(db_url, kek_config, [ids[0], ids[-1]])
    id_file = tmp_path / "ids.txt"
    id_file.write_text("# incident 42\n" + "\n".join(ids) + "\n\nuser-0000\nghost\n")

    dry = runner.invoke(
        root, ["revoke", "--file", str(id_file), "--dry-run", "--database-url", db_url]
    )
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "would revoke 2500 users (dry run, nothing changed)",
        *ids,
    ]
    assert keys_of(db_url, kek_config, [ids[0], ids[-1]]) == before

    result = runner.invoke(root, ["revoke", "--file", str(id_file), "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert result.stdout == "revoked 2500 users\n"
    after = keys_of(db_url, kek_config, [ids[0], ids[-1]])
    assert all(before[u] != after[u] for u in (ids[0], ids[-1]))
    store = store_for(db_url, kek_config)
    assert sorted(r.count for r in store.audit_log()) == [500, 1000, 1000]
    store.engine.dispose()


def test_file_json_lists_every_id(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str, tmp_path: Path
) -> None:
    """--json gives scripts the count, the ids and one audit id per batch."""
    ids = [f"u{n}" for n in range(1001)]
    seed_users(db_url, kek_config, ids)
    id_file = tmp_path / "ids.txt"
    id_file.write_text("\n".join(ids))
    result = runner.invoke(
        root, ["revoke", "--file", str(id_file), "--json", "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["count"], document["audit_ids"]) == (1001, [1, 2])
    assert document["user_ids"] == sorted(ids)


def test_cohort_fields_without_cohort_columns_are_a_clear_error(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """--tenant needs the app's users table; the CLI says so instead of guessing one."""
    seed_users(db_url, kek_config, ["alice"])
    before = keys_of(db_url, kek_config, ["alice"])
    result = runner.invoke(root, ["revoke", "--tenant", "acme", "--database-url", db_url])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cohort field 'tenant' has no configured column: ")
    assert "needs the store configured with cohort columns" in result.stderr
    assert result.stderr.count("\n") == 1
    assert keys_of(db_url, kek_config, ["alice"]) == before


def test_rotated_before_selects_without_cohort_columns(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """--rotated-before works on sjti's own table: every key older than the date rotates."""
    seed_users(db_url, kek_config, ["alice", "bob"])
    result = runner.invoke(
        root, ["revoke", "--rotated-before", "2999-01-01", "--json", "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["user_ids"] == ["alice", "bob"]


def test_usage_errors_are_exit_1(
    runner: CliRunner, root: typer.Typer, db_url: str, tmp_path: Path
) -> None:
    """No selection, mixed selections, bad dates and empty files are refused up front."""
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    cases = {
        (): "error: say whom to revoke: --user, --file, --tenant, --role, --created-before, "
        "--last-login-before or --rotated-before\n",
        ("--file", str(empty), "--user", "a"): "error: --file cannot be combined with --user "
        "or cohort filters\n",
        ("--created-before", "yesterday"): "error: --created-before expects an ISO 8601 date, "
        "e.g. 2025-01-31T12:00Z\n",
        ("--file", str(empty)): f"error: {empty} holds no user ids\n",
        ("--file", str(tmp_path / "nope.txt")): f"error: cannot read {tmp_path / 'nope.txt'}: "
        "No such file or directory\n",
    }
    for args, message in cases.items():
        result = runner.invoke(root, ["revoke", *args, "--database-url", db_url])
        assert result.exit_code == 1, args
        assert result.stderr == message


def test_wait_names_the_live_nodes_that_have_not_applied_it(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """--wait: committed either way; exit 1 naming the laggards, exit 0 once all applied."""
    seed_users(db_url, kek_config, ["alice", "bob"])
    store = store_for(db_url, kek_config)
    before = store.load_secret("alice")
    store.heartbeat("node-a", 0)  # a live node that has applied nothing yet
    late = runner.invoke(
        root, ["revoke", "-u", "alice", "--wait", "--timeout", "0.2", "--database-url", db_url]
    )
    assert late.exit_code == 1
    assert "had not applied event 1 by the timeout: node-a" in late.output
    assert store.load_secret("alice") != before  # the revocation is committed regardless

    store.heartbeat("node-a", 1_000)  # caught up past anything we will write
    done = runner.invoke(root, ["revoke", "-u", "bob", "--wait", "--database-url", db_url])
    store.engine.dispose()
    assert done.exit_code == 0, done.output
    assert done.stdout == "revoked 1 user\napplied by every live node (1)\n"
