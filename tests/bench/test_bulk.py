"""``python -m sjti.bench.bulk`` at the suite's size: every step runs and is checked on
SQLite and PostgreSQL, one event per batch, and the bench rows come out of it. Speeds are
the bench's report, never asserted here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sjti.bench import bulk
from sjti.bench._result import compute_ratios

USERS = bulk.QUICK_USERS  # 20 000: two batches for everyone, one for the 10% tenant
STEPS = ["seed", "preview_10pct", "revoke_10pct", "preview_all", "revoke_all", "rewrap"]


@pytest.fixture(scope="module")
def runs(postgres_server_url: str) -> list[bulk.BulkRun]:
    """One quick bulk run on a SQLite file and a scratch PostgreSQL database."""
    notes: list[str] = []
    made = bulk.run_bulk(USERS, postgres_url=postgres_server_url, notes=notes)
    assert notes == []
    return made


@pytest.mark.service
def test_every_step_ran_on_both_databases(runs: list[bulk.BulkRun]) -> None:
    """SQLite then PostgreSQL, each with the six steps over the right number of rows."""
    assert [r.database for r in runs] == ["sqlite", "postgresql"]
    for run in runs:
        assert list(run.steps) == STEPS
        rows = {name: step.rows for name, step in run.steps.items()}
        assert rows == {
            "seed": USERS,
            "preview_10pct": USERS // 10,
            "revoke_10pct": USERS // 10,
            "preview_all": USERS,
            "revoke_all": USERS,
            "rewrap": USERS,
        }


@pytest.mark.service
def test_one_event_and_one_bus_message_per_batch(runs: list[bulk.BulkRun]) -> None:
    """Nodes learn of a cohort from one message per batch, each listing its users."""
    for run in runs:
        tenth, everyone = run.steps["revoke_10pct"], run.steps["revoke_all"]
        assert (tenth.events, tenth.bus_messages, tenth.max_listed) == (1, 1, USERS // 10)
        assert (everyone.events, everyone.bus_messages) == (2, 2)
        assert everyone.max_listed == bulk.BATCH


@pytest.mark.service
def test_bench_rows_and_targets_come_from_the_run(runs: list[bulk.BulkRun]) -> None:
    """Six rows per database, finite, with their targets computed and judged."""
    measures = bulk.measures(runs)
    names = {m.name for m in measures}
    for db in ("sqlite", "postgresql"):
        assert {
            bulk.row_name(db, what)
            for what in (
                "revoke_users_per_s",
                "revoke_10pct_users_per_s",
                "rss_growth_mb",
                "revoke_bus_messages",
                "preview_vs_revoke_pct",
                "rewrap_rows_per_s",
            )
        } <= names
    assert all(math.isfinite(m.value) and m.value >= 0 for m in measures)
    ratios = {r.name: r for r in compute_ratios({m.name: m.value for m in measures})}
    for name in (
        "bulk_revoke_sqlite",
        "bulk_revoke_postgresql",
        "bulk_rss_sqlite",
        "bulk_rss_postgresql",
        "bulk_preview_sqlite",
        "bulk_preview_postgresql",
        "bulk_rewrap_sqlite",
        "bulk_rewrap_postgresql",
    ):
        assert ratios[name].value is not None
        assert type(ratios[name].passed) is bool
    assert ratios["bulk_revoke_postgresql"].target == 50_000
    assert ratios["bulk_revoke_sqlite"].target == 100_000


def test_the_command_runs_sqlite_only_and_writes_its_json(tmp_path: Path) -> None:
    """``--no-postgres --users N`` runs the SQLite steps and writes every step as JSON."""
    path = tmp_path / "bulk.json"
    assert bulk.main(["--users", "2000", "--no-postgres", "--json", str(path)]) == 0
    document = json.loads(path.read_text(encoding="utf-8"))
    assert list(document["runs"]) == ["sqlite"]
    steps = document["runs"]["sqlite"]
    assert list(steps) == STEPS
    assert steps["revoke_all"]["rows"] == 2000
    assert steps["revoke_all"]["events"] == 1
    assert document["batch"] == bulk.BATCH


def test_a_cohort_size_below_ten_is_refused() -> None:
    """The 10% tenant needs at least ten users."""
    with pytest.raises(ValueError, match="at least 10"):
        bulk.run_bulk(5)


def test_the_bench_runs_the_same_sizes() -> None:
    """sjti bench's quick and full bulk sizes are this module's."""
    from sjti.bench._run import BULK

    assert BULK == (bulk.QUICK_USERS, bulk.DEFAULT_USERS)
