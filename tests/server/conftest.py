"""One SQLite-backed server for the module's e2e tests (a real uvicorn process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("sjti-serve")
    started = Server(workdir, {"SJTI_LOGIN_MAX_FAILURES": "3"})
    yield started
    started.stop()
