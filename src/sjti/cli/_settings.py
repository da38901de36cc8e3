"""The settings every command reads: ``sjti.toml`` and ``SJTI_*``, the options typed on top.

Options that name a setting (``--database-url``, ``--issuer``...) default to ``None``,
meaning "what the settings say", so the CLI and the service it operates agree by
construction.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import ConfigurationError
from ..settings import Settings
from ._keys_cmds import CliError

__all__ = ["DatabaseUrl", "cli_settings"]

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (default: the database_url setting, SJTI_DATABASE_URL or "
        "sjti.toml; else sqlite:///sjti.db).",
        show_default=False,
    ),
]


def cli_settings(**options: Any) -> Settings:
    """The settings in force, with each option the user gave (not ``None``) on top."""
    try:
        given = {name: value for name, value in options.items() if value is not None}
        return Settings.load(**given)
    except ConfigurationError as exc:
        raise CliError(f"settings: {exc}") from None
