"""``sjti events``: the revocation event log and the nodes that follow it.

``prune`` deletes events older than the retention (the newest always stays: it is how a
node learns the log's position). A node that was away longer than the retention clears
its cache instead of replaying; nothing is lost, it only costs cache misses.
``nodes`` lists the live nodes, their watermark and how far each is behind.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from .._core.wrapping import Kek, KekRing
from ..stores._revocation import utc_now
from ..stores.base import NODE_TTL
from ._keys_cmds import cli_errors, console
from ._revoke_cmds import open_store
from ._settings import DatabaseUrl, cli_settings

__all__ = ["app"]

app = typer.Typer(help="The revocation event log (outbox) and the nodes that follow it.")


def _ring() -> KekRing:
    # The event log holds no secrets: these commands never unwrap one, so no SJTI_KEK.
    return KekRing([Kek.generate("unused")])


@app.command("prune")
def prune(
    older_than: Annotated[
        float | None,
        typer.Option(
            help="Retention in days: delete events older than this (default: the "
            "event_retention_days setting, 7). A node away longer clears its cache instead "
            "of replaying.",
            min=0.0,
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete revocation events older than the retention (keys and audit rows stay)."""
    with cli_errors():
        days = older_than if older_than is not None else cli_settings().event_retention_days
        with open_store(database_url, _ring()) as store:
            removed = store.prune_events(utc_now() - timedelta(days=days))
    console.print(f"pruned {removed} event{'' if removed == 1 else 's'}")


@app.command("nodes")
def nodes(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Live nodes (heartbeat in the last few seconds), their watermark and lag."""
    with cli_errors(), open_store(database_url, _ring()) as store:
        latest = store.latest_event_id()
        live = store.live_nodes(NODE_TTL)
    rows = [
        {"node": n.id, "watermark": n.watermark, "behind": max(0, latest - n.watermark),
         "seen_at": n.seen_at.isoformat(), "info": n.info}
        for n in live
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"latest_event": latest, "nodes": rows}, indent=2))
        return
    table = Table("node", "watermark", "behind", "seen at", "info")
    for row in rows:
        table.add_row(*(str(row[k]) for k in ("node", "watermark", "behind", "seen_at", "info")))
    console.print(f"latest event {latest}; {len(rows)} live node(s)")
    console.print(table)
