"""`sjti events prune` and `sjti events nodes`: retention and the node registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import MetaData, update
from typer.testing import CliRunner

from sjti.cli._events_cmds import app as events_app
from sjti.stores._schema import events_table

from .conftest import seed_users, store_for


def test_prune_keeps_recent_events_and_always_the_newest(
    runner: CliRunner, db_url: str, kek_config: str
) -> None:
    """Old events go; a node must still learn the log's position from the newest one."""
    seed_users(db_url, kek_config, ["a", "b", "c"])
    store = store_for(db_url, kek_config)
    for user in ("a", "b", "c"):
        store.revoke(user)
    events = events_table(MetaData(), "sjti_revocation_events")
    long_ago = datetime.now(UTC) - timedelta(days=30)
    with store.engine.begin() as conn:
        conn.execute(update(events).values(at=long_ago))  # all three are old
    result = runner.invoke(events_app, ["prune", "--older-than", "7", "--database-url", db_url])
    page = store.events_after(0)
    store.engine.dispose()
    assert result.exit_code == 0, result.output
    assert result.stdout == "pruned 2 events\n"
    assert [e.id for e in page.events] == [3]
    assert (page.oldest, page.latest) == (3, 3)


def test_nodes_lists_watermarks_and_lag(runner: CliRunner, db_url: str, kek_config: str) -> None:
    """An operator sees which node is behind the log, and by how much."""
    seed_users(db_url, kek_config, ["a", "b"])
    store = store_for(db_url, kek_config)
    store.revoke("a")
    store.revoke("b")
    store.heartbeat("node-1", 2, "host:1")
    store.heartbeat("node-2", 1, "host:2")
    store.engine.dispose()
    result = runner.invoke(events_app, ["nodes", "--json", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["latest_event"] == 2
    assert [(n["node"], n["watermark"], n["behind"]) for n in document["nodes"]] == [
        ("node-1", 2, 0),
        ("node-2", 1, 1),
    ]


def test_events_commands_need_no_kek(db_url: str) -> None:
    """The log holds no secrets: pruning must not require SJTI_KEK."""
    bare = CliRunner(env={"SJTI_KEK": None})
    result = bare.invoke(events_app, ["prune", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert result.stdout == "pruned 0 events\n"
