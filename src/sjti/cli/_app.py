"""Commands of the ``sjti`` CLI. Each one parses options and calls a plain function."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .. import __version__
from .._core.keys import SigningKey
from .._core.keyset import KeySet
from ..demo import run_demo
from ..errors import SjtiError
from ..settings import Settings
from . import (
    _config_cmds,
    _events_cmds,
    _kek_cmds,
    _keys_cmds,
    _revoke_cmds,
    _token_cmds,
    _users_cmds,
)
from ._settings import DatabaseUrl, cli_settings

app = typer.Typer(
    name="sjti",
    help="JSON Web Tokens revocable per user, instantly, without a revocation list.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Application signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="The secret store's database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(_token_cmds.app, name="token")
app.command("revoke")(_revoke_cmds.revoke)
app.add_typer(_events_cmds.app, name="events")
app.add_typer(_users_cmds.app, name="users")
app.add_typer(_config_cmds.app, name="config")
keys_app.command("rotate")(_keys_cmds.keys_rotate)
kek_app = typer.Typer(
    help="Key-encryption keys (SJTI_KEK) for user secrets at rest.", no_args_is_help=True
)
app.add_typer(kek_app, name="kek")
kek_app.command("rotate")(_kek_cmds.kek_rotate)
kek_app.command("new")(_kek_cmds.kek_new)

console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (default: ./sjti.toml if present, or $SJTI_CONFIG).",
            show_default=False,
        ),
    ] = None,
) -> None:
    if config is not None:
        os.environ["SJTI_CONFIG"] = str(config)  # every command (and worker) reads it
    if version:
        console.print(__version__)
        raise typer.Exit(0)


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the steps as JSON.")] = False,
) -> None:
    """Walk through issue -> verify both layers -> attacks -> revoke -> rejected."""
    steps = run_demo()
    if as_json:
        rows = [
            {"step": s.step, "layer": s.layer, "outcome": s.outcome, "expected": s.expected}
            for s in steps
        ]
        typer.echo(json.dumps({"steps": rows}, indent=2))
    else:
        table = Table(title="sjti: one token's life", title_justify="left")
        for column in ("step", "layer", "outcome", "as expected"):
            table.add_column(column)
        for s in steps:
            colour = "yellow" if s.layer != "-" and s.outcome != "accepted" else "green"
            mark = "[green]yes[/green]" if s.as_expected else "[red]NO[/red]"
            table.add_row(s.step, s.layer, f"[{colour}]{s.outcome}[/{colour}]", mark)
        console.print(table)
        console.print(
            "The boundary layer (app key only) is not revocation-aware; the user layer "
            "(sjti with the user's key) is. A token is accepted only if both pass."
        )
    if not all(s.as_expected for s in steps):
        raise _fail("a demo step did not behave as expected")


# The benchmark and the comparison are typer apps of their own (they also run as
# `python -m sjti.bench` / `python -m sjti.compare`, and import what they measure only
# when run): everything, --help included, is handed to them.
_PASS_THROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],
}


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Measure sjti against PyJWT, joserfc, authlib and python-jose (try --quick, --json)."""
    from ..bench import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def compare(ctx: typer.Context) -> None:
    """Run sjti, epoch, denylist, session and plain through the same scenarios (--quick, --json)."""
    from ..compare import main as compare_main

    raise typer.Exit(compare_main(list(ctx.args)))


@keys_app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to write (mode 0600).")],
    alg: Annotated[
        str, typer.Option(help="HS256/384/512, RS*/PS* , ES256/384/512, EdDSA.")
    ] = "EdDSA",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Generate a signing key and write its private JWK to a file only you can read."""
    if out.exists() and not force:
        raise _fail(f"{out} exists (use --force to overwrite)")
    try:
        key = SigningKey.generate(alg)
    except SjtiError as exc:
        raise _fail(str(exc)) from None
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"keys": [key.export_private_jwk()]}, fh, indent=2)
    os.chmod(out, 0o600)
    console.print(f"wrote {alg} key kid={key.kid} to {out} (mode 0600)")


@keys_app.command("jwks")
def keys_jwks(
    key_file: Annotated[Path, typer.Argument(help="Key file written by 'sjti keys new'.")],
) -> None:
    """Print the public JWKS for a key file (never any private or secret part)."""
    try:
        entries = json.loads(key_file.read_text())["keys"]
        keyset = KeySet(verify_only=[SigningKey.from_jwk(e) for e in entries])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"cannot read {key_file}: {type(exc).__name__}") from None
    except SjtiError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(keyset.to_jwks(), indent=2))


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade sjti's tables (idempotent; safe when several processes race)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from ..stores.sql import schema_versions, upgrade

    try:
        engine = create_engine(_settings_or_fail(database_url=database_url).database_url)
    except (ArgumentError, ImportError) as exc:
        raise _fail(f"cannot use this database URL: {type(exc).__name__}") from None
    try:
        applied = upgrade(engine)
        versions = schema_versions(engine)
    except (SQLAlchemyError, SjtiError) as exc:
        raise _fail(f"database unavailable: {type(exc).__name__}") from None
    finally:
        engine.dispose()
    for line in applied or ["schema already up to date"]:
        console.print(line)
    console.print(", ".join(f"{table} v{version}" for table, version in sorted(versions.items())))


def _settings_or_fail(**options: object) -> Settings:
    with _keys_cmds.cli_errors():
        return cli_settings(**options)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (the host setting).", show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Bind port (the port setting).", show_default=False)
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (more than one needs a bus).", show_default=False),
    ] = None,
) -> None:
    """Run the reference auth service (FastAPI on uvicorn; OpenAPI at /docs).

    Settings come from sjti.toml and SJTI_* variables (`sjti config show` prints them,
    docs/configuration.md lists them): SJTI_DATABASE_URL (sqlite:///sjti.db),
    SJTI_REDIS_URL, SJTI_KEK, SJTI_ENV (production needs SJTI_KEK), SJTI_KEY_FILE,
    SJTI_ISSUER... Admins: `sjti users create NAME --admin`.
    """
    from ..server import serve as run_server

    settings = _settings_or_fail(host=host, port=port, workers=workers)
    # Workers read the settings themselves: hand them what was typed here.
    os.environ.update(
        SJTI_HOST=settings.host, SJTI_PORT=str(settings.port), SJTI_WORKERS=str(settings.workers)
    )
    try:
        run_server(settings)
    except SjtiError as exc:
        raise _fail(str(exc)) from None
