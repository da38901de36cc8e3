"""The HTTP bench: real servers (sjti's and fastapi-users'), one load generator, checks."""

from __future__ import annotations

import json
import shutil

import pytest

from sjti.bench._http_load import parse_wrk
from sjti.bench.http import NO_AUTH, PEER, SJTI, HttpResult, _json, _text, main, run

_WRK = """Running 1s test @ http://127.0.0.1:8000/me
  1 threads and 16 connections
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.05s
  2345 requests in 1.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   2345.00
"""


@pytest.fixture(scope="module")
def quick() -> HttpResult:
    """One quick run, SQLite x 1 worker (what the suite can afford)."""
    return run(seconds=0.6, connections=4, generator="httpx", shapes=["sqlite"])


def test_http_bench_runs_sjti_and_its_peer_side_by_side(quick: HttpResult) -> None:
    """SQLite x 1 worker, quick: every server and route answered 2xx under load, each
    row has a rate, latencies and CPU, and the peer target is computed (not missing)."""
    result = quick
    assert result.clean
    (shape,) = result.shapes
    assert {(r.server, r.route) for r in shape.rows} == {
        (SJTI, "/me"),
        (PEER, "/users/me"),
        (NO_AUTH, "/me"),
        (SJTI, "/healthz"),
        (PEER, "/healthz"),
    }
    for row in shape.rows:
        assert row.requests > 0
        assert row.rps > 0
        assert 0 < row.p50_ms <= row.p99_ms
        assert row.cpu_ms_per_request >= 0  # /proc counts 10 ms ticks: a short run may see 0
    assert sum(r.cpu_ms_per_request for r in shape.rows) > 0
    (target,) = result.targets()
    assert target.name == "sqlite: sjti /me vs fastapi-users"
    assert target.value is not None
    assert target.value > 0


def test_wrk_output_is_read_with_units_errors_and_timeouts() -> None:
    """Latency units (us, ms, s), non-2xx and socket errors, timeouts apart."""
    load = parse_wrk(_WRK)
    assert (load.requests, load.seconds) == (2345, 1.0)
    assert (load.p50_ms, load.p99_ms) == (0.812, 1050.0)
    assert (load.errors, load.timeouts) == (6, 3)
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused")


def test_http_bench_refuses_a_missing_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for wrk where it is not installed is a clear error, before any server starts."""
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="wrk is not installed"):
        main(["--quick", "--generator", "wrk"])


def test_http_bench_refuses_an_unknown_shape() -> None:
    """A shape the bench does not know is a ValueError naming it."""
    with pytest.raises(ValueError, match="cluster"):
        run(seconds=0.5, shapes=["cluster"])


def test_http_bench_reports_json_and_text(quick: HttpResult) -> None:
    """--json carries rows, targets and verdicts; the text names each target's verdict."""
    data = json.loads(_json(quick))
    assert data["clean"] is True
    assert [t["name"] for t in data["targets"]] == ["sqlite: sjti /me vs fastapi-users"]
    assert data["targets"][0]["passed"] in (True, False)
    assert len(data["shapes"][0]["rows"]) == 5
    text = _text(quick)
    assert "sqlite x 1 worker(s)" in text
    assert "all requests answered 2xx" in text
