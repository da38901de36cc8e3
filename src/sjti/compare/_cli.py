"""``sjti compare`` as a plain function: ``main(argv) -> exit code``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..bench._backends import redact
from ._cells import CompareError, is_alarm
from ._report import render_markdown, render_table
from ._run import FULL, QUICK, run
from ._services import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, POSTGRES_ENV, REDIS_ENV

__all__ = ["DEFAULT_OUTPUT", "main"]

DEFAULT_OUTPUT = Path("docs/comparison.md")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sjti compare",
        description=(
            "Run sjti, epoch, denylist, session and plain through the same scenarios "
            "(revocation, executed leak attacks, outage, state size, round trips, cost) "
            "on SQLite, PostgreSQL and (the deny-list) Redis, and print the table."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small run ({QUICK.users} users x {QUICK.tokens} tokens; "
        f"default {FULL.users} x {FULL.tokens}); writes no page unless --output is given",
    )
    parser.add_argument("--json", action="store_true", help='print {"cells": [...]} only')
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help=f"where to write the Markdown page (default {DEFAULT_OUTPUT} for a full run)",
    )
    parser.add_argument("--no-write", action="store_true", help="write no Markdown page")
    parser.add_argument("--users", type=int, metavar="U", help="users in the population")
    parser.add_argument("--tokens", type=int, metavar="T", help="tokens per user")
    parser.add_argument("--scratch", type=Path, metavar="DIR", help="keep the SQLite files here")
    postgres_default = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    redis_default = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)
    parser.add_argument(
        "--postgres-url",
        default=postgres_default,
        metavar="URL",
        help=f"PostgreSQL server for scratch databases (env {POSTGRES_ENV}; "
        f"now {redact(postgres_default)})",
    )
    parser.add_argument(
        "--redis-url",
        default=redis_default,
        metavar="URL",
        help=f"Redis for the deny-list (env {REDIS_ENV}; now {redact(redis_default)})",
    )
    parser.add_argument(
        "--sqlite-only",
        action="store_true",
        help="the smaller run: SQLite files only, no PostgreSQL or Redis",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 1 when a scenario could not run or a design misbehaved."""
    args = _parser().parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.users is not None or args.tokens is not None:
        size = replace(size, users=args.users or size.users, tokens=args.tokens or size.tokens)
    if size.users < 10 or size.tokens < 1:
        print("sjti compare: need at least 10 users and 1 token each", file=sys.stderr)
        return 2
    try:
        result = run(
            size,
            scratch=args.scratch,
            postgres_url=None if args.sqlite_only else args.postgres_url,
            redis_url=None if args.sqlite_only else args.redis_url,
        )
    except CompareError as exc:
        print(f"sjti compare: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_table(result.cells))
    output = args.output if args.output is not None or args.quick else DEFAULT_OUTPUT
    if output is not None and not args.no_write:
        flags = [("--quick", args.quick), ("--sqlite-only", args.sqlite_only)]
        command = " ".join(["sjti compare", *(flag for flag, on in flags if on)])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_markdown(result, command), encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    alarms = [cell for cell in result.cells if is_alarm(cell)]
    for cell in alarms:
        print(f"sjti compare: {cell.strategy}/{cell.scenario}: {cell.verdict}", file=sys.stderr)
    return 1 if alarms else 0
