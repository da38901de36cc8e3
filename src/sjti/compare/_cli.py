"""``sjti compare`` as a plain function: ``main(argv) -> exit code``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from .._typer import run_typer
from ..bench._backends import redact
from ._cells import CompareError, is_alarm
from ._report import render_markdown, render_table
from ._run import FULL, QUICK, run
from ._services import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, POSTGRES_ENV, REDIS_ENV

__all__ = ["DEFAULT_OUTPUT", "main"]

DEFAULT_OUTPUT = Path("docs/comparison.md")


_POSTGRES_DEFAULT = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
_REDIS_DEFAULT = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)

app = typer.Typer(add_completion=False)


@app.command(
    help=(
        "Run sjti, epoch, denylist, session and plain through the same scenarios "
        "(revocation, executed leak attacks, outage, state size, round trips, cost) "
        "on SQLite, PostgreSQL and (the deny-list) Redis, and print the table."
    )
)
def compare(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help=f"Small run ({QUICK.users} users x {QUICK.tokens} tokens; default "
            f"{FULL.users} x {FULL.tokens}); writes no page unless --output is given.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"cells": [...]} only.')] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help=f"Where to write the Markdown page (default {DEFAULT_OUTPUT} for a full run).",
        ),
    ] = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Write no Markdown page.")] = False,
    users: Annotated[int | None, typer.Option(metavar="U", help="Users in the population.")] = None,
    tokens: Annotated[int | None, typer.Option(metavar="T", help="Tokens per user.")] = None,
    scratch: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Keep the SQLite files here.")
    ] = None,
    postgres_url: Annotated[
        str,
        typer.Option(
            metavar="URL",
            help=f"PostgreSQL server for scratch databases (env {POSTGRES_ENV}; "
            f"now {redact(_POSTGRES_DEFAULT)}).",
            show_default=False,
        ),
    ] = _POSTGRES_DEFAULT,
    redis_url: Annotated[
        str,
        typer.Option(
            metavar="URL",
            help=f"Redis for the deny-list (env {REDIS_ENV}; now {redact(_REDIS_DEFAULT)}).",
            show_default=False,
        ),
    ] = _REDIS_DEFAULT,
    sqlite_only: Annotated[
        bool,
        typer.Option(
            "--sqlite-only", help="The smaller run: SQLite files only, no PostgreSQL or Redis."
        ),
    ] = False,
) -> None:
    """Run the comparison; exit 1 when a scenario could not run or a design misbehaved."""
    size = QUICK if quick else FULL
    if users is not None or tokens is not None:
        size = replace(size, users=users or size.users, tokens=tokens or size.tokens)
    if size.users < 10 or size.tokens < 1:
        print("sjti compare: need at least 10 users and 1 token each", file=sys.stderr)
        raise typer.Exit(2)
    try:
        result = run(
            size,
            scratch=scratch,
            postgres_url=None if sqlite_only else postgres_url,
            redis_url=None if sqlite_only else redis_url,
        )
    except CompareError as exc:
        print(f"sjti compare: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_table(result.cells))
    target = output if output is not None or quick else DEFAULT_OUTPUT
    if target is not None and not no_write:
        flags = [("--quick", quick), ("--sqlite-only", sqlite_only)]
        command = " ".join(["sjti compare", *(flag for flag, on in flags if on)])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_markdown(result, command), encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    alarms = [cell for cell in result.cells if is_alarm(cell)]
    for cell in alarms:
        print(f"sjti compare: {cell.strategy}/{cell.scenario}: {cell.verdict}", file=sys.stderr)
    if alarms:
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """``sjti compare`` as a function: the exit code (2 for a usage error)."""
    return run_typer(app, argv, prog="sjti compare")
