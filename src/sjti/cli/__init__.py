"""The ``sjti`` command line. Thin typer commands that call plain functions."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Console-script entry point; explains what to install if the CLI extra is missing."""
    try:
        from ._app import app
    except ImportError as exc:  # pragma: no cover - depends on the install
        sys.stderr.write(f"the sjti CLI needs its extra: pip install 'sjti[cli]' ({exc.name})\n")
        raise SystemExit(1) from None
    app()
