"""`sjti revoke` with cohort filters alone: any size, so in batches (one transaction, audit
row and event each), with progress per committed batch and a dry run that only counts."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from .conftest import seed_users, store_for

USERS = ["u1", "u2", "u3", "u4", "u5"]
EVERYONE = ["revoke", "--rotated-before", "2999-01-01", "--batch-size", "2"]


def test_a_cohort_revokes_in_batches_and_shows_each_one(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """5 users in batches of 2: three commits, each on stderr as it lands (a plain line
    off a terminal), three audit rows and events; every key changed."""
    seed_users(db_url, kek_config, USERS)
    store = store_for(db_url, kek_config)
    before = {u: store.load_secret(u) for u in USERS}
    result = runner.invoke(root, [*EVERYONE, "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert result.stdout == "revoked 5 users in 3 batches\n"
    assert result.stderr == (
        "revoked 2/5 users (1 batches)\nrevoked 4/5 users (2 batches)\n"
        "revoked 5/5 users (3 batches)\n"
    )
    assert all(store.load_secret(u) not in (None, before[u]) for u in USERS)
    audit = store.audit_log()
    assert [a.count for a in audit] == [1, 2, 2]
    assert [e.kind for e in store.events_after(0).events] == ["cohort"] * 3
    store.engine.dispose()


def test_json_lists_every_batch_and_the_dry_run_only_counts(
    runner: CliRunner, root: typer.Typer, db_url: str, kek_config: str
) -> None:
    """--json: the batches, their audit and event ids, no progress lines; --dry-run: the
    count and ids from the preview, nothing written."""
    seed_users(db_url, kek_config, USERS)
    dry = runner.invoke(root, [*EVERYONE, "--dry-run", "--json", "--database-url", db_url])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) == {
        "dry_run": True,
        "count": 5,
        "user_ids": USERS,
        "truncated": False,
        "audit_ids": [],
        "event_ids": [],
    }
    store = store_for(db_url, kek_config)
    assert store.audit_log() == []
    real = runner.invoke(root, [*EVERYONE, "--json", "--database-url", db_url])
    assert real.exit_code == 0, real.output
    document = json.loads(real.stdout)
    assert (document["count"], document["batches"], document["user_ids"]) == (5, 3, USERS)
    assert document["event_ids"] == [e.id for e in store.events_after(0).events]
    assert document["audit_ids"] == sorted(a.id for a in store.audit_log())
    assert real.stderr == ""
    store.engine.dispose()


def test_batch_size_is_bounded_by_one_event(
    runner: CliRunner, root: typer.Typer, db_url: str
) -> None:
    """0 and more than one event lists (10 000) are usage errors (exit 2), nothing runs."""
    for size in ("0", "10001"):
        result = runner.invoke(
            root, ["revoke", "--rotated-before", "2999-01-01", "--batch-size", size,
                   "--database-url", db_url],
        )  # fmt: skip
        assert result.exit_code == 2, size
        assert "--batch-size" in result.stderr
