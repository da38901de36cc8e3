"""``sjti compare``: every security verdict is executed, and the tests can fail.

One small run feeds most tests; deliberately broken contenders (a session store that keeps
the raw secret, an epoch port that fails open) prove the cells are computed, not typed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sjti.compare import SCENARIOS, Cell, Size, main, run
from sjti.compare._jwt_contenders import EpochContender
from sjti.compare._session_contender import WeakSessionContender
from sjti.errors import BackendError

SMALL = Size(users=30, tokens=2, loops=5)
STRATEGIES = ("sjti", "epoch", "denylist", "session", "plain")
Verdicts = dict[tuple[str, str], Cell]


def _index(cells: Sequence[Cell]) -> Verdicts:
    return {(cell.strategy, cell.scenario): cell for cell in cells}


@pytest.fixture(scope="module")
def cells() -> Verdicts:
    return _index(run(SMALL).cells)


F, N = "forges", "cannot forge"
EXPECTED_LEAKS = {
    #                          sjti  epoch denylist session plain
    "leak_db_copy": (N, N, N, N, N),
    "leak_app_key": (N, F, F, N, F),
    "leak_db_copy_app_key": (N, F, F, N, F),
    "leak_db_copy_app_secrets": (F, F, F, N, F),
}


@pytest.mark.parametrize("scenario", list(EXPECTED_LEAKS))
@pytest.mark.parametrize("index", range(len(STRATEGIES)), ids=STRATEGIES)
def test_leak_verdicts(cells: Verdicts, scenario: str, index: int) -> None:
    """sjti: the app key alone (or with the DB copy) mints and edits nothing; with the KEK
    too it falls. session: a read-only copy authenticates nobody, even with the server key.
    epoch, denylist, plain: the signing key alone forges."""
    strategy = STRATEGIES[index]
    assert cells[strategy, scenario].verdict == EXPECTED_LEAKS[scenario][index]


@pytest.mark.parametrize(
    ("strategy", "logout", "one"),
    [
        ("sjti", "yes", "no (whole user only)"),
        ("epoch", "yes", "no (whole user only)"),
        ("denylist", "yes", "yes"),
        ("session", "yes", "yes"),
        ("plain", "no", "no"),
    ],
)
def test_revocation_capabilities(cells: Verdicts, strategy: str, logout: str, one: str) -> None:
    assert cells[strategy, "logout_everywhere"].verdict == logout
    assert cells[strategy, "revoke_one"].verdict == one


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cohort_revocation(cells: Verdicts, strategy: str) -> None:
    """Every tenth user revoked, the others unaffected (else the verdict says BROKEN)."""
    cell = cells[strategy, "revoke_cohort"]
    if strategy == "plain":
        assert (cell.verdict, cell.value) == ("no", None)
    else:
        assert cell.verdict.endswith(f"({SMALL.users // 10} users)")
        assert isinstance(cell.value, float)
        assert cell.value >= 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_outage_never_accepts_unchecked(cells: Verdicts, strategy: str) -> None:
    verdict = cells[strategy, "db_unavailable"].verdict
    assert verdict.startswith("boundary ok, ")
    if strategy == "plain":
        assert "no user layer (accepts)" in verdict
    else:
        assert "user layer fails closed" in verdict
    assert ("issue ok" in verdict) == (strategy in {"epoch", "plain"})


def test_round_trips_are_counted(cells: Verdicts) -> None:
    """Alone, every stateful design reads once; with the user row in hand sjti and epoch
    read nothing more, denylist and session still do."""
    trips = {s: cells[s, "round_trips"].value for s in STRATEGIES}
    extra = {s: cells[s, "round_trips_user_row"].value for s in STRATEGIES}
    assert trips == {"sjti": 1, "epoch": 1, "denylist": 1, "session": 1, "plain": 0}
    assert extra["sjti"] == 0
    assert extra["epoch"] == 0
    assert extra["plain"] == 0
    for name in ("denylist", "session"):
        value = extra[name]
        assert value is not None
        assert value >= 1


def test_state_size_is_measured(cells: Verdicts) -> None:
    """O(users) for sjti, O(tokens) for denylist and session, nothing for plain."""
    size = {s: cells[s, "state_bytes"] for s in STRATEGIES}
    assert size["plain"].value == 0
    assert f"{SMALL.users + 2} rows" in size["sjti"].verdict  # users + schema/audit rows
    tokens = SMALL.users * SMALL.tokens
    assert f"{tokens} rows" in size["session"].verdict
    assert f"{tokens} rows" in size["denylist"].verdict
    for name in ("sjti", "denylist", "session"):
        value = size[name].value
        assert isinstance(value, int)
        assert value > 0


def test_peers_and_timings_present(cells: Verdicts) -> None:
    for name in (*STRATEGIES, "pyjwt", "joserfc"):
        value = cells[name, "boundary_us"].value
        assert isinstance(value, float)
        assert value > 0
    assert cells["plain", "revocation_latency"].verdict == "not possible"


# --- the cells can turn red ---------------------------------------------------------------


def test_session_store_keeping_the_raw_secret_turns_the_leak_cell_red() -> None:
    """With the raw secret in the dump, DB copy + server key rebuilds a working token.
    (The copy alone still lacks the server key for the MAC.)"""
    weak = _index(run(SMALL, contenders={"session": WeakSessionContender}, peers=False).cells)
    assert weak["session", "leak_db_copy_app_key"].verdict == "forges"
    assert weak["session", "leak_db_copy_app_secrets"].verdict == "forges"
    assert weak["session", "leak_db_copy"].verdict == "cannot forge"
    assert weak["session", "leak_app_key"].verdict == "cannot forge"


class FailOpenEpoch(EpochContender):
    """A broken port: when the database is gone it treats the user as never revoked."""

    def _fetch(self, key: str) -> Any:
        try:
            return super()._fetch(key)
        except BackendError:
            return None


def test_fail_open_port_turns_the_outage_cell_red() -> None:
    broken = _index(run(SMALL, contenders={"epoch": FailOpenEpoch}, peers=False).cells)
    assert "ACCEPTS UNCHECKED" in broken["epoch", "db_unavailable"].verdict


# --- the command --------------------------------------------------------------------------


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--json", "--users", "20", "--tokens", "1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["cells"]
    seen = set()
    for cell in document["cells"]:
        assert set(cell) == {"strategy", "scenario", "verdict", "value"}
        assert isinstance(cell["strategy"], str)
        assert cell["scenario"] in SCENARIOS
        assert isinstance(cell["verdict"], str)
        assert cell["value"] is None or isinstance(cell["value"], int | float)
        seen.add((cell["strategy"], cell["scenario"]))
    assert {(s, sc) for s in STRATEGIES for sc in SCENARIOS} <= seen


def test_markdown_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "comparison.md"
    assert main(["--quick", "--users", "20", "--tokens", "1", "--output", str(page)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| scenario | sjti | epoch | denylist | session | plain |")
    text = page.read_text(encoding="utf-8")
    assert "sjti compare --quick" in text
    assert table in text
    assert "O(users)" in text
