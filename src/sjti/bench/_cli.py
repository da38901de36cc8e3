"""``sjti bench`` as a plain function: ``main(argv) -> exit code``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._backends import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, POSTGRES_ENV, REDIS_ENV, redact
from ._cases import CaseError
from ._report import render, render_markdown
from ._run import BULK, FULL, QUICK, REVOCATIONS, run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sjti bench",
        description=(
            "Time sjti against PyJWT, joserfc, Authlib and python-jose on the same token, "
            "interleaved in one process, next to hand-written floors."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a fast, noisier run ({QUICK[0]} rounds of {QUICK[1]:g} ms; "
        f"default {FULL[0]} rounds of {FULL[1]:g} ms)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON to PATH ('-' for stdout)"
    )
    parser.add_argument(
        "--markdown", metavar="PATH", help="also write the report as a Markdown page to PATH"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument("--plain", action="store_true", help="plain text even if rich is installed")
    parser.add_argument("--rounds", type=int, metavar="N", help="rounds (overrides the preset)")
    parser.add_argument(
        "--target-ms", type=float, metavar="MS", help="time per case per round (overrides)"
    )
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="how rounds become one ns/op (default: median)",
    )
    services = parser.add_argument_group(
        "services",
        "PostgreSQL adds sjti.verify_full_postgres.HS256 (in a scratch database the bench "
        "creates and drops); PostgreSQL and Redis together add revocation across three node "
        "processes (propagation, and revoke with wait=all until every node acknowledged). "
        "The catch-up after a bus outage runs on them too, else on SQLite. A service that "
        "does not answer is skipped with a note.",
    )
    postgres_default = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    redis_default = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)
    services.add_argument(
        "--postgres-url",
        metavar="URL",
        default=postgres_default,
        help=f"PostgreSQL server (env {POSTGRES_ENV}; now {redact(postgres_default)})",
    )
    services.add_argument(
        "--redis-url",
        metavar="URL",
        default=redis_default,
        help=f"Redis server (env {REDIS_ENV}; now {redact(redis_default)})",
    )
    services.add_argument(
        "--no-services", action="store_true", help="skip everything that needs PostgreSQL or Redis"
    )
    services.add_argument(
        "--revocations",
        type=int,
        metavar="N",
        help=f"revocations timed across nodes, plain and acknowledged (default "
        f"{REVOCATIONS[1]}, {REVOCATIONS[0]} with --quick)",
    )
    parser.add_argument(
        "--bulk-users",
        type=int,
        metavar="N",
        help=f"users in the bulk revocation (default {BULK[1]:,}, {BULK[0]:,} with --quick; "
        "0 leaves it out)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the bench, print the table, write JSON if asked; 1 on a refused case or ``--check``."""
    args = _parser().parse_args(argv)
    try:
        result = run(
            args.quick,
            rounds=args.rounds,
            target_ms=args.target_ms,
            stat=args.stat,
            postgres_url=None if args.no_services else args.postgres_url,
            redis_url=None if args.no_services else args.redis_url,
            revocations=args.revocations,
            bulk_users=args.bulk_users,
        )
    except (CaseError, ValueError) as exc:
        print(f"sjti bench: {exc}", file=sys.stderr)
        return 1
    # Keep stdout pure JSON when the JSON goes there.
    render(result, sys.stderr if args.json == "-" else sys.stdout, plain=args.plain)
    if args.json:
        document = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
        if args.json == "-":
            sys.stdout.write(document)
        else:
            with open(args.json, "w", encoding="utf-8") as out:
                out.write(document)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as page:
            page.write(render_markdown(result))
    if args.check and result.missed:
        names = ", ".join(r.name for r in result.missed)
        print(f"sjti bench: target missed: {names}", file=sys.stderr)
        return 1
    return 0
