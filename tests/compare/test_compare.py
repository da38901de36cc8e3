"""``sjti compare``: every security verdict is executed, and the tests can fail.

One small SQLite run feeds most tests; deliberately broken contenders (a session store that
keeps the raw secret, an epoch port that fails open) prove the cells are computed, not
typed. A small run on PostgreSQL + Redis (``service``) must give the same verdicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sjti.compare import SCENARIOS, Cell, Size, main, run
from sjti.compare._cells import is_alarm
from sjti.compare._contender import Contender, DeviceScope
from sjti.compare._jwt_contenders import EpochContender, SjtiContender, SjtiDevicesContender
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


@pytest.fixture(scope="module")
def service_cells(postgres_url: str, redis_url: str) -> list[Cell]:
    """The same small run on scratch PostgreSQL databases and Redis (no SQLite)."""
    return list(run(SMALL, sqlite=False, postgres_url=postgres_url, redis_url=redis_url).cells)


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


@pytest.mark.parametrize(
    ("strategy", "outcome", "extra", "per_device", "per_token"),
    [
        ("sjti", "yes (A refused, B kept)", 0, 0, 0),
        ("epoch", "all devices (A and B refused)", 0, 0, 0),
        ("denylist", "yes, each jti listed (A refused, B kept)", 1, 0, 1),
        ("session", "yes (A refused, B kept)", 1, 1, 0),
    ],
)
def test_device_revocation(
    cells: Verdicts, strategy: str, outcome: str, extra: int, per_device: int, per_token: int
) -> None:
    """Signing out device A: sjti refuses A and keeps B with no query beyond the user row
    and no row per device or token; session pays a read and a row per device, denylist a
    read and a row per token; epoch can only sign every device out."""
    cell = cells[strategy, "revoke_device"]
    assert cell.verdict == (
        f"{outcome}; 1 round trip/verify ({extra} extra with the user row); "
        f"+{per_device} rows/device, +{per_token} rows/token"
    )
    assert cell.value == extra
    assert not is_alarm(cell)


def test_plain_cannot_revoke_a_device(cells: Verdicts) -> None:
    assert (cells["plain", "revoke_device"].verdict, cells["plain", "revoke_device"].value) == (
        "no",
        None,
    )


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
    # users + one schema-version row per sjti table (secrets, audit, events, nodes)
    assert f"{SMALL.users + 4} rows" in size["sjti"].verdict
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


def _rows_after_cohort(cell: Cell) -> int:
    found = re.search(r"after revoking 10%: [^,]+, (\d+) (?:rows|keys)", cell.verdict)
    assert found is not None, cell.verdict
    return int(found.group(1))


def test_state_is_measured_after_the_cohort_too(cells: Verdicts) -> None:
    """epoch holds nothing until someone is revoked; then one row per revoked user."""
    epoch = cells["epoch", "state_bytes"]
    assert epoch.verdict.startswith(f"{SMALL.users}x{SMALL.tokens}: ")
    assert ", 0 rows;" in epoch.verdict
    assert _rows_after_cohort(epoch) == len(range(0, SMALL.users, 10))
    assert _rows_after_cohort(cells["plain", "state_bytes"]) == 0


LATENCY = re.compile(r"p50 \d+\.\d ms, p99 \d+\.\d ms \(\d+ revocations(, .+)?\)")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_revocation_latency_is_measured(cells: Verdicts, strategy: str) -> None:
    """Revoke on node A, node B (its own engine on the same file) refuses: p99 in ms."""
    cell = cells[strategy, "revocation_latency"]
    if strategy == "plain":
        assert (cell.verdict, cell.value) == ("not possible", None)
        return
    assert LATENCY.fullmatch(cell.verdict), cell.verdict
    assert f"({SMALL.revocations} revocations)" in cell.verdict
    assert isinstance(cell.value, float)
    assert 0 < cell.value < 5_000


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


class DeafDevices(SjtiDevicesContender):
    """A broken device sign-out: it says "device" and changes nothing."""

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        return "device"


class SweepingDevices(SjtiDevicesContender):
    """A broken device sign-out: it rotates every user's key in the table."""

    def sign_out_device(self, user: str, device: str) -> DeviceScope | None:
        self.revoke_users(["device-user", "device-other"])
        return "device"


def _sjti_with(devices: type[SjtiDevicesContender]) -> type[SjtiContender]:
    class Broken(SjtiContender):
        def with_devices(self) -> Contender:
            made = devices(self.engine, self._app)
            made.prepare()
            return made

    return Broken


@pytest.mark.parametrize(
    ("devices", "verdict"),
    [
        (DeafDevices, "BROKEN: the signed-out device keeps 2 tokens"),
        (SweepingDevices, "BROKEN: another user was logged out"),
    ],
)
def test_broken_device_sign_out_is_an_alarm(
    devices: type[SjtiDevicesContender], verdict: str
) -> None:
    """The device cell is executed: a sign-out that keeps the device, or logs out another
    user, turns red and makes ``sjti compare`` fail."""
    broken = _index(run(SMALL, contenders={"sjti": _sjti_with(devices)}, peers=False).cells)
    cell = broken["sjti", "revoke_device"]
    assert cell.verdict == verdict
    assert is_alarm(cell)


# --- the command --------------------------------------------------------------------------


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--sqlite-only", "--json", "--users", "20", "--tokens", "1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["cells"]
    seen = set()
    for cell in document["cells"]:
        assert set(cell) == {"strategy", "scenario", "verdict", "value", "backend"}
        assert cell["backend"] == ("none" if cell["strategy"] in {"pyjwt", "joserfc"} else "sqlite")
        assert isinstance(cell["strategy"], str)
        assert cell["scenario"] in SCENARIOS
        assert isinstance(cell["verdict"], str)
        assert cell["value"] is None or isinstance(cell["value"], int | float)
        seen.add((cell["strategy"], cell["scenario"]))
    assert {(s, sc) for s in STRATEGIES for sc in SCENARIOS} <= seen


def test_markdown_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "comparison.md"
    argv = ["--quick", "--sqlite-only", "--users", "20", "--tokens", "1", "--output", str(page)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert table.startswith("| scenario | sjti | epoch | denylist | session | plain |")
    device_row = next(
        line for line in table.splitlines() if line.startswith("| revoke one device |")
    )
    assert "| yes (A refused, B kept); " in device_row
    assert device_row.endswith("| no | - | - |")
    text = page.read_text(encoding="utf-8")
    assert "sjti compare --quick --sqlite-only" in text
    assert table in text
    assert "O(users)" in text
    assert "A refused and B kept by `sjti`, `denylist`, `session`;" in text
    assert "every device of the user signed out by `epoch`; not possible for `plain`." in text


def test_unreachable_postgres_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """No silent fallback to SQLite: a service that does not answer stops the run."""
    argv = ["--quick", "--users", "10", "--tokens", "1", "--no-write"]
    argv += ["--postgres-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"]
    assert main(argv) == 1
    assert "--sqlite-only" in capsys.readouterr().err


# --- PostgreSQL and Redis -------------------------------------------------------------------

SECURITY = ("logout_everywhere", "revoke_one", "db_unavailable", *EXPECTED_LEAKS)
NUMBERS = ("state_bytes", "round_trips", "round_trips_user_row", "verify_us", "revoke_cohort")


@pytest.mark.service
def test_services_give_the_sqlite_verdicts(cells: Verdicts, service_cells: list[Cell]) -> None:
    """Every strategy on PostgreSQL, and the Redis deny-list, reach the verdicts SQLite
    reaches: the attacks and revocations are executed again, not copied."""
    seen = {(cell.strategy, cell.backend) for cell in service_cells}
    assert seen == {(s, "pg") for s in STRATEGIES} | {("denylist", "redis")} | {
        ("pyjwt", "none"),
        ("joserfc", "none"),
    }
    for cell in service_cells:
        if cell.scenario in SECURITY:
            assert cell.verdict == cells[cell.strategy, cell.scenario].verdict, cell
        if cell.scenario == "revoke_device":  # the outcome; Redis counts keys, not rows
            outcome = cells[cell.strategy, cell.scenario].verdict.split(";")[0]
            assert cell.verdict.split(";")[0] == outcome, cell


@pytest.mark.service
def test_services_measure_state_and_round_trips(service_cells: list[Cell]) -> None:
    by = {(c.strategy, c.backend, c.scenario): c for c in service_cells}
    for strategy, backend in [*((s, "pg") for s in STRATEGIES), ("denylist", "redis")]:
        for scenario in NUMBERS:
            value = by[strategy, backend, scenario].value
            if strategy == "plain" and scenario == "revoke_cohort":
                assert value is None
                continue
            assert isinstance(value, int | float), (strategy, backend, scenario)
            assert value >= 0
    for name in ("sjti", "denylist", "session"):
        assert by[name, "pg", "state_bytes"].value > 0  # type: ignore[operator]
    assert f"{SMALL.users + 4} rows" in by["sjti", "pg", "state_bytes"].verdict
    assert f"{SMALL.users} keys" in by["denylist", "redis", "state_bytes"].verdict
    redis_state = by["denylist", "redis", "state_bytes"].value
    assert isinstance(redis_state, int)
    assert redis_state > 0
    # counted, not assumed: one EXISTS alone; the app's user row plus the EXISTS
    assert by["denylist", "redis", "round_trips"].value == 1
    assert by["denylist", "redis", "round_trips_user_row"].value == 1
    trips = {s: by[s, "pg", "round_trips"].value for s in STRATEGIES}
    assert trips == {"sjti": 1, "epoch": 1, "denylist": 1, "session": 1, "plain": 0}


@pytest.mark.service
def test_services_measure_latency_and_epoch_state(service_cells: list[Cell]) -> None:
    """sjti through the three-node cluster (caches + Redis bus), the others with two
    engines or clients on one store; plain cannot revoke. epoch's state grows on revoking."""
    by = {(c.strategy, c.backend, c.scenario): c for c in service_cells}
    for strategy, backend in [*((s, "pg") for s in STRATEGIES), ("denylist", "redis")]:
        cell = by[strategy, backend, "revocation_latency"]
        if strategy == "plain":
            assert (cell.verdict, cell.value) == ("not possible", None)
            continue
        assert LATENCY.fullmatch(cell.verdict), cell.verdict
        assert isinstance(cell.value, float), (strategy, backend)
        assert 0 < cell.value < 5_000
    assert "3 nodes, cache + Redis bus" in by["sjti", "pg", "revocation_latency"].verdict
    assert "nodes" not in by["epoch", "pg", "revocation_latency"].verdict
    epoch = by["epoch", "pg", "state_bytes"]
    assert ", 0 rows;" in epoch.verdict
    assert _rows_after_cohort(epoch) == len(range(0, SMALL.users, 10))


@pytest.mark.service
def test_services_table_has_a_column_per_backend(service_cells: list[Cell]) -> None:
    from sjti.compare._report import render_table

    header = render_table(service_cells).splitlines()[0]
    assert header.startswith("| scenario | sjti (pg) | epoch (pg) |")
    assert "| denylist (redis) | pyjwt | joserfc |" in header
