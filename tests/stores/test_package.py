"""The stores package surface: honest __all__ lists and no SQLAlchemy on plain import."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

MODULES = [
    "sjti.stores",
    "sjti.stores.base",
    "sjti.stores.memory",
    "sjti.stores.layouts",
    "sjti.stores.migrations",
    "sjti.stores.sql",
    "sjti.stores.sql_async",
]


def _isort_style(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    """A sorted __all__ reviews well; a name that does not exist breaks star-imports."""
    module: ModuleType = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(set(exported), key=_isort_style)
    assert [n for n in exported if not hasattr(module, n)] == []


def test_importing_stores_does_not_import_sqlalchemy() -> None:
    """Memory-only users (and the core) must not pay for, or need, the sql extra."""
    code = "import sys, sjti.stores; print('sqlalchemy' in sys.modules)"
    out = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
