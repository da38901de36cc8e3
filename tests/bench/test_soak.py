"""The chaos soak: its checker's rules on hand-made timelines, and a quick real run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sjti.bench._soak_check import Evidence, check
from sjti.bench._soak_faults import FaultSpec, default_schedule, parse_schedule
from sjti.bench._soak_record import Mint, Probe, Refresh, Revocation
from sjti.bench.soak import MUST_BE_ZERO, missing

SOAK_SECONDS = 60  # wall-clock bound of the quick run, start-up and teardown included


def _mint(mid: int, start: float, end: float, *, parent: Mint | None = None, node: int = 0) -> Mint:
    return Mint(
        id=mid,
        user="u1",
        node=node,
        grant="password" if parent is None else "refresh_token",
        start=start,
        end=end,
        parent=None if parent is None else parent.id,
        root_end=end if parent is None else parent.root_end,
        access=f"a{mid}",
        refresh=f"r{mid}",
    )


def _logout(start: float, end: float, node: int = 0, confirmed_by: str = "2xx") -> Revocation:
    return Revocation(
        0, "logout", ("u1",), node, start, end, confirmed_by, "logout (all devices)", 1
    )


def _judge(
    mints: list[Mint],
    probes: list[Probe],
    revocation: Revocation,
    refreshes: tuple[Refresh, ...] = (),
) -> dict[str, Any]:
    return check(
        Evidence(
            requests=[],
            mints=mints,
            probes=probes,
            refreshes=refreshes,
            revocations=[revocation],
            unconfirmed=[],
            audit=[{"actor": "u1", "reason": "logout (all devices)"}],
            event_rows=None,
            bound=1.0,
            nodes=3,
        )
    )


def test_acceptance_after_return_on_the_revoking_node_is_a_violation() -> None:
    """A token from a login that returned before the logout, accepted after it returned."""
    token = _mint(0, 0.0, 0.5)
    report = _judge([token], [Probe(0, 0, 2.1, 2.2, 200)], _logout(1.0, 2.0))
    assert report["accepted_after_return_same_node"] == 1
    assert report["probes_of_revoked_tokens_after_return"] == 1


def test_other_nodes_get_the_staleness_bound_and_no_more() -> None:
    """Other nodes: inside the bound is counted apart with its delay; beyond it fails."""
    token = _mint(0, 0.0, 0.5)
    probes = [Probe(0, 1, 2.4, 2.5, 200), Probe(0, 2, 3.5, 3.6, 200), Probe(0, 1, 2.2, 2.3, 401)]
    report = _judge([token], probes, _logout(1.0, 2.0))
    assert report["accepted_inside_bound_other_nodes"] == 1
    assert report["accepted_inside_bound_max_ms"] == pytest.approx(400.0)
    assert report["accepted_beyond_bound_other_nodes"] == 1
    assert report["accepted_after_return_same_node"] == 0


def test_a_login_in_flight_when_the_revocation_started_is_not_counted() -> None:
    """Ambiguous order: the login may come after the logout, so its token may live."""
    token = _mint(0, 0.9, 1.5)
    report = _judge([token], [Probe(0, 0, 2.5, 2.6, 200)], _logout(1.0, 2.0))
    assert report["accepted_after_return_same_node"] == 0
    assert report["probes_of_revoked_tokens_after_return"] == 0


def test_a_probe_sent_before_the_revocation_returned_is_not_counted() -> None:
    """Until the revocation answered, accepting the token is no violation."""
    token = _mint(0, 0.0, 0.5)
    report = _judge([token], [Probe(0, 0, 1.9, 2.1, 200)], _logout(1.0, 2.0))
    assert report["accepted_after_return_same_node"] == 0


def test_a_refresh_racing_the_logout_yields_a_revoked_token() -> None:
    """The session predates the logout: a token refreshed from it mid-logout must die too."""
    login = _mint(0, 0.0, 0.5)
    raced = _mint(1, 1.5, 1.7, parent=login, node=1)  # started after the logout started
    use = Refresh(0, 1, 1.5, 1.7, 200, 1, reuse=False)
    report = _judge([login, raced], [Probe(1, 0, 2.5, 2.6, 200)], _logout(1.0, 2.0), (use,))
    assert report["accepted_after_return_same_node"] == 1
    assert report["violating_tokens_minted"]["during_revocation"] == 1
    assert report["refreshes_racing_a_revocation"] == 1
    assert report["refresh_accepted_after_return"] == 0  # it started before the return


def test_a_refresh_after_return_is_a_violation_on_any_node() -> None:
    """A refresh token of a revoked session is never cached: refusing it has no grace."""
    login = _mint(0, 0.0, 0.5)
    later = _mint(1, 2.1, 2.2, parent=login, node=2)
    use = Refresh(0, 2, 2.1, 2.2, 200, 1, reuse=False)
    report = _judge([login, later], [], _logout(1.0, 2.0), (use,))
    assert report["refresh_accepted_after_return"] == 1


def test_a_logout_settled_by_401_is_set_aside_after_reuse_detection() -> None:
    """Reuse detection also rotates the key: the 401 may not be the logout's doing."""
    login = _mint(0, 0.0, 0.5)
    reused = Refresh(0, 1, 1.2, 1.3, 400, None, reuse=True)
    revocation = _logout(1.0, 2.0, confirmed_by="401-after-error")
    report = _judge([login], [Probe(0, 0, 2.5, 2.6, 200)], revocation, (reused,))
    assert report["revocations_set_aside_ambiguous"] == 1
    assert report["accepted_after_return_same_node"] == 0


def test_a_successful_logout_without_its_audit_row_is_lost() -> None:
    """Every revocation answered 2xx must have left its row in the audit trail."""
    report = check(Evidence([], [], [], [], [_logout(1.0, 2.0)], [], [], None, bound=1.0, nodes=3))
    assert report["revocations_lost"] == 1


def test_fault_schedules_parse_and_cover_every_kind() -> None:
    """An explicit schedule parses in time order; the default has each kind at least once."""
    assert parse_schedule("server@9, redis@2") == [
        FaultSpec("redis", 2.0),
        FaultSpec("server", 9.0),
    ]
    assert parse_schedule("") == []
    with pytest.raises(ValueError, match="KIND@SECONDS"):
        parse_schedule("disk@3")
    for duration in (14.0, 60.0, 300.0):
        schedule = default_schedule(duration)
        assert {spec.kind for spec in schedule} == {"redis", "postgres", "server"}
        assert all(0 < spec.at < duration for spec in schedule)


def _run_quick_soak(report: Path) -> subprocess.CompletedProcess[str]:
    """The quick soak in its own process group; on timeout, SIGTERM lets it clean up."""
    argv = [sys.executable, "-m", "sjti.bench.soak", "--quick", "--json", str(report)]
    proc = subprocess.Popen(  # noqa: S603 - our interpreter and module
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=SOAK_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"the quick soak took more than {SOAK_SECONDS} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


@pytest.mark.service
def test_quick_soak_accepts_no_revoked_token_under_faults(tmp_path: Path) -> None:
    """Three nodes under load while Redis, PostgreSQL and a node die: no must-be-zero slips."""
    if lacks := missing():
        pytest.skip(f"the soak needs {', '.join(lacks)}")
    report_path = tmp_path / "soak.json"
    done = _run_quick_soak(report_path)
    assert done.returncode in (0, 1), done.stdout[-3000:]
    report = json.loads(report_path.read_text())
    for key in (*MUST_BE_ZERO, "requests", "revocations", "faults", "must_be_zero", "verdict"):
        assert key in report, key
    assert report["requests"] > 0
    assert report["revocations"] > 0
    assert report["probes_of_revoked_tokens_after_return"] > 0
    assert all(
        report["faults_by_kind"].get(kind, 0) >= 1 for kind in ("redis", "postgres", "server")
    )
    why = f"{report['failures']}\n{done.stdout[:4000]}"
    assert report["must_be_zero"] == dict.fromkeys(MUST_BE_ZERO, 0), why
    assert done.returncode == 0
