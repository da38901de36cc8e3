"""schemathesis against /openapi.json of a real server: no input gets a 500, and every
answer is documented (status, content type, body schema)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import Server

CHECKS = ",".join((
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
))  # fmt: skip


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    """A short, time-bounded fuzz run: no 5xx, and responses conform to the document."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis CLI not installed")
    server = Server(tmp_path, {})
    try:
        run = subprocess.run(  # noqa: S603 - fixed argv
            [st, "run", f"{server.url}/openapi.json", "--checks", CHECKS,
             "--max-time", "25", "--max-examples", "25", "--workers", "2",
             "--phases", "examples,coverage,fuzzing", "--request-timeout", "10"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-4000:]
