"""Run a typer app as ``main(argv) -> exit code`` (for ``python -m`` and for tests)."""

from __future__ import annotations

import typer

__all__ = ["run_typer"]


def run_typer(app: typer.Typer, argv: list[str] | None, *, prog: str) -> int:
    """Parse ``argv`` and run ``app``; the exit code, as the command line would give it
    (usage errors print their message and give 2, like any typer command)."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name=prog, standalone_mode=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0  # pragma: no cover - standalone mode always exits
