"""``sjti bench`` as a plain function: ``main(argv) -> exit code``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Annotated, Literal

import typer

from .._typer import run_typer
from ._backends import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, POSTGRES_ENV, REDIS_ENV, redact
from ._cases import CaseError
from ._report import render, render_markdown
from ._run import BULK, FULL, QUICK, REVOCATIONS, run

__all__ = ["main"]


_POSTGRES_DEFAULT = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
_REDIS_DEFAULT = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)
_SERVICES = "services"

app = typer.Typer(add_completion=False)


@app.command(
    help=(
        "Time sjti against PyJWT, joserfc, Authlib and python-jose on the same token, "
        "interleaved in one process, next to hand-written floors. PostgreSQL adds the "
        "store rows (in a scratch database the bench creates and drops); PostgreSQL and "
        "Redis together add revocation across three node processes (propagation, and "
        "revoke with wait=all until every node acknowledged). The catch-up after a bus "
        "outage runs on them too, else on SQLite. A service that does not answer is "
        "skipped with a note."
    )
)
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help=f"A fast, noisier run ({QUICK[0]} rounds of {QUICK[1]:g} ms; "
            f"default {FULL[0]} rounds of {FULL[1]:g} ms).",
        ),
    ] = False,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="PATH", help="Also write the results as JSON to PATH ('-': stdout)."
        ),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Also write the report as a Markdown page to PATH."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 when a target is missed.")
    ] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain text even if rich is installed.")
    ] = False,
    rounds: Annotated[
        int | None, typer.Option(metavar="N", help="Rounds (overrides the preset).")
    ] = None,
    target_ms: Annotated[
        float | None, typer.Option(metavar="MS", help="Time per case per round (overrides).")
    ] = None,
    stat: Annotated[
        str, typer.Option(help="How rounds become one ns/op: median or min.")
    ] = "median",
    postgres_url: Annotated[
        str,
        typer.Option(
            metavar="URL",
            help=f"PostgreSQL server (env {POSTGRES_ENV}; now {redact(_POSTGRES_DEFAULT)}).",
            show_default=False,
            rich_help_panel=_SERVICES,
        ),
    ] = _POSTGRES_DEFAULT,
    redis_url: Annotated[
        str,
        typer.Option(
            metavar="URL",
            help=f"Redis server (env {REDIS_ENV}; now {redact(_REDIS_DEFAULT)}).",
            show_default=False,
            rich_help_panel=_SERVICES,
        ),
    ] = _REDIS_DEFAULT,
    no_services: Annotated[
        bool,
        typer.Option(
            "--no-services",
            help="Skip everything that needs PostgreSQL or Redis.",
            rich_help_panel=_SERVICES,
        ),
    ] = False,
    revocations: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help=f"Revocations timed across nodes, plain and acknowledged (default "
            f"{REVOCATIONS[1]}, {REVOCATIONS[0]} with --quick).",
            rich_help_panel=_SERVICES,
        ),
    ] = None,
    bulk_users: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help=f"Users in the bulk revocation (default {BULK[1]:,}, {BULK[0]:,} with "
            "--quick; 0 leaves it out).",
        ),
    ] = None,
    no_scale: Annotated[
        bool,
        typer.Option(
            "--no-scale",
            help="Leave out the scale rows (bytes per user on disk and in a cache, the "
            "Zipf hot set, revocation rates: docs/scale.md).",
        ),
    ] = False,
) -> None:
    """Run the bench, print the table, write JSON if asked; 1 on a refused case or --check."""
    if stat not in ("median", "min"):
        raise typer.BadParameter("median or min", param_hint="--stat")
    chosen: Literal["median", "min"] = "median" if stat == "median" else "min"
    try:
        result = run(
            quick,
            rounds=rounds,
            target_ms=target_ms,
            stat=chosen,
            postgres_url=None if no_services else postgres_url,
            redis_url=None if no_services else redis_url,
            revocations=revocations,
            bulk_users=bulk_users,
            scale=not no_scale,
        )
    except (CaseError, ValueError) as exc:
        print(f"sjti bench: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    # Keep stdout pure JSON when the JSON goes there.
    render(result, sys.stderr if json_path == "-" else sys.stdout, plain=plain)
    if json_path:
        document = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
        if json_path == "-":
            sys.stdout.write(document)
        else:
            with open(json_path, "w", encoding="utf-8") as out:
                out.write(document)
    if markdown:
        _write_page(markdown, render_markdown(result))
    if check and result.missed:
        names = ", ".join(r.name for r in result.missed)
        print(f"sjti bench: target missed: {names}", file=sys.stderr)
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """``sjti bench`` as a function: the exit code (2 for a usage error)."""
    return run_typer(app, argv, prog="sjti bench")


# A page may carry hand-written notes (how a run was made, HTTP rows from bench-http)
# after this line: regenerating the tables keeps them.
KEPT_MARK = "<!-- sjti bench --markdown keeps everything below this line -->"


def _write_page(path: str, generated: str) -> None:
    kept = ""
    with contextlib.suppress(FileNotFoundError):
        with open(path, encoding="utf-8") as old:
            text = old.read()
        if KEPT_MARK in text:
            kept = "\n" + KEPT_MARK + text.split(KEPT_MARK, 1)[1]
    with open(path, "w", encoding="utf-8") as page:
        page.write(generated + kept)
