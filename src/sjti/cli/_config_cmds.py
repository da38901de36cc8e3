"""``sjti config``: the settings in force and where each came from; their reference."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..settings import Secret, Setting, collect, describe, redact_url
from ._keys_cmds import CliError, cli_errors, console
from ._settings import cli_settings

__all__ = ["app", "reference"]

app = typer.Typer(help="The settings (sjti.toml and SJTI_* environment).", no_args_is_help=True)


def _text(value: object) -> str:
    if isinstance(value, Secret):
        return "(set, hidden)"
    return "(unset)" if value is None else str(redact_url(value))


def reference() -> str:
    """docs/configuration.md's table: every setting, its variable, type and default."""
    lines = []
    section = None
    for spec in describe():
        if spec.section != section:
            section = spec.section
            lines += ["", f"### {section}", ""]
            lines += [
                "| setting | environment | type | default | meaning |",
                "|---|---|---|---|---|",
            ]
        lines.append(
            f"| `{spec.name}` | `{spec.env}` | {spec.type_name} | {_default(spec)} | {spec.doc} |"
        )
    return "\n".join(lines[1:]) + "\n"


def _default(spec: Setting) -> str:
    if spec.default is None:
        return "unset"
    if isinstance(spec.default, bool):
        return f"`{str(spec.default).lower()}`"  # as TOML and the environment write it
    return f"`{spec.default}`"


@app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every setting's value in force and its source (secrets are never printed)."""
    with cli_errors():
        settings = cli_settings()
        try:
            sources = {name: source for name, (_, source) in collect(None, None, {}).items()}
        except Exception as exc:  # cli_settings already reported configuration errors
            raise CliError(str(exc)) from None
    rows = [
        (
            spec.name,
            spec.env,
            _text(getattr(settings, spec.name)),
            sources.get(spec.name, "default"),
        )
        for spec in describe()
    ]
    if as_json:
        typer.echo(
            json.dumps(
                {name: {"value": value, "source": source} for name, _, value, source in rows},
                indent=2,
            )
        )
        return
    table = Table(title="sjti settings", title_justify="left")
    for column in ("setting", "environment", "value", "source"):
        table.add_column(column)
    for name, env, value, source in rows:
        table.add_row(name, env, escape(value), source)
    console.print(table)


@app.command("docs")
def docs() -> None:
    """Print the settings reference (Markdown), as in docs/configuration.md."""
    typer.echo(reference(), nl=False)
