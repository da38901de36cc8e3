"""The HTTP bench: two real servers, one load generator, a result that can be compared."""

from __future__ import annotations

import math
import shutil

import pytest

from sjti.bench.http import main, run


def test_http_bench_measures_both_servers() -> None:
    """Both /me variants answer 200 under load and yield a finite rate and auth cost."""
    result = run(seconds=1.0, connections=4, generator="httpx")
    assert result.generator == "httpx"
    assert result.me_auth_rps > 0
    assert result.me_no_auth_rps > 0
    assert math.isfinite(result.auth_cost_pct)


def test_http_bench_refuses_a_missing_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for wrk where it is not installed is a clear error, before any server starts."""
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="wrk is not installed"):
        main(["--seconds", "1", "--generator", "wrk"])
