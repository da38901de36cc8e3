"""The scale rows (docs/scale.md) at the suite's size: every row is there and positive, the
sizes move the way the stored bytes say they must, the Zipf model agrees with a real
KeyCache, and the derived rows are the stated arithmetic. Speeds are the bench's report,
never asserted here."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from typing import Any

import pytest

import sjti.bench._cli
from sjti.bench import _backends, _scale_zipf, main
from sjti.bench._report import render
from sjti.bench._result import BenchResult, Measure
from sjti.bench._scale import QUICK, SECTION, TENANT, measure_scale

DATABASES = ("sqlite", "postgresql")
# Made up on purpose: the derived rows must be exactly this arithmetic on them.
CATCHUP = {"events": 250, "database": "sqlite", "replay": {"catchup_ms": 50.0}}
BULK = {"runs": {"sqlite": {"revoke_10pct": {"per_second": 80_000.0}}}}


def expected_units() -> dict[str, str]:
    units = {}
    for db in DATABASES:
        for layout in ("owned", "app"):
            for devices in (0, 3):
                units[f"sjti.scale_disk_bytes_per_user.{db}.{layout}_{devices}dev"] = "bytes"
        units[f"sjti.scale_index_bytes_per_user.{db}.owned"] = "bytes"
        units[f"sjti.scale_revocations_per_s.{db}"] = "revocations/s"
    units["sjti.scale_commit_ms.postgresql"] = "ms"
    for kind in ("uuid_0dev", "uuid_3dev", "int_0dev"):
        units[f"sjti.scale_cache_bytes_per_user.{kind}"] = "bytes"
    units["sjti.scale_node_applied_per_s.message"] = "messages/s"
    for s in ("1.0", "1.2"):
        for what in ("hot_set_99_pct", "hot_set_99_model_pct", "hot_set_99_100m_pct"):
            units[f"sjti.scale_{what}.s{s}"] = "% of users"
    units["sjti.scale_node_applied_per_s.replay"] = "events/s"
    units["sjti.scale_revoke_10m_tenant_s.sqlite"] = "s"
    return units


@pytest.fixture(scope="module")
def scaled(postgres_server_url: str) -> Iterator[tuple[dict[str, Measure], dict[str, Any]]]:
    """One quick scale run on a SQLite file and a scratch PostgreSQL database."""
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        scratch = _backends._postgres_scratch(stack, postgres_server_url, notes)
        assert scratch is not None, notes
        rows, details = measure_scale(QUICK, database_url=scratch[0], catchup=CATCHUP, bulk=BULK)
        yield {row.name: row for row in rows}, details


@pytest.mark.service
def test_every_row_is_there_positive_and_in_its_unit(
    scaled: tuple[dict[str, Measure], dict[str, Any]],
) -> None:
    rows, _ = scaled
    assert {name: row.unit for name, row in rows.items()} == expected_units()
    for row in rows.values():
        assert row.section == SECTION
        assert math.isfinite(row.value)
        assert row.value > 0, row.name


@pytest.mark.service
def test_disk_bytes_grow_with_devices_by_about_their_text(
    scaled: tuple[dict[str, Measure], dict[str, Any]],
) -> None:
    """Three device ids are 3 x 22 characters and two spaces in one column: 68 bytes a
    row, give or take page fill; the indexes do not hold them."""
    rows, details = scaled
    for db in DATABASES:
        for layout in ("owned", "app"):
            name = f"sjti.scale_disk_bytes_per_user.{db}.{layout}_%ddev"
            grown = rows[name % 3].value - rows[name % 0].value
            assert 60 < grown < 110, (db, layout, grown)
        tables = details["disk"][db]
        assert len(tables["owned_0"]["indexes"]) == 3
        assert tables["owned_3"]["index_total"] == pytest.approx(
            tables["owned_0"]["index_total"], rel=0.1
        )
        # the app table without sjti's columns is smaller than with them
        assert tables["app_base"]["total"] < tables["app_0"]["total"]
        assert tables["owned_0"]["users"] == QUICK.disk_users


@pytest.mark.service
def test_cache_entries_grow_with_devices_and_id_length(
    scaled: tuple[dict[str, Measure], dict[str, Any]],
) -> None:
    """A device adds 16 bytes to the cached record (plus one tag byte); a UUID id is 28
    characters longer than an 8-digit one."""
    rows, _ = scaled
    prefix = "sjti.scale_cache_bytes_per_user."
    with_devices = rows[prefix + "uuid_3dev"].value - rows[prefix + "uuid_0dev"].value
    assert 3 * 16 <= with_devices <= 3 * 16 + 24
    longer = rows[prefix + "uuid_0dev"].value - rows[prefix + "int_0dev"].value
    assert 24 <= longer <= 40
    assert 32 < rows[prefix + "int_0dev"].value < 400


@pytest.mark.service
def test_revocations_ran_on_each_thread_count(
    scaled: tuple[dict[str, Measure], dict[str, Any]],
) -> None:
    rows, details = scaled
    rates = details["revocations_per_s"]
    assert list(rates["postgresql"]) == list(QUICK.threads)
    assert list(rates["sqlite"]) == [1]
    assert rows["sjti.scale_revocations_per_s.postgresql"].value == max(
        rates["postgresql"].values()
    )
    assert 0 < details["commit_ms"] == rows["sjti.scale_commit_ms.postgresql"].value


@pytest.mark.service
def test_derived_rows_are_the_stated_arithmetic(
    scaled: tuple[dict[str, Measure], dict[str, Any]],
) -> None:
    rows, details = scaled
    assert rows["sjti.scale_node_applied_per_s.replay"].value == 250 / 0.050
    assert rows["sjti.scale_revoke_10m_tenant_s.sqlite"].value == TENANT / 80_000
    for s in ("1.0", "1.2"):
        hot = details["hot_set"][s]
        assert 0.9 < hot["measured_over_model"] < 1.1
        assert hot["ideal_size_100m"] < hot["derived_size_100m"] <= 2 * 100_000_000
        derived = rows[f"sjti.scale_hot_set_99_100m_pct.s{s}"].value
        assert derived == 100 * hot["derived_size_100m"] / 100_000_000


@pytest.mark.service
def test_hot_set_measured_at_each_size_and_the_curve_climbs(
    scaled: tuple[dict[str, Measure], dict[str, Any]],
) -> None:
    _, details = scaled
    for s in ("1.0", "1.2"):
        hot = details["hot_set"][s]
        assert [r["users"] for r in hot["runs"]] == list(QUICK.zipf_users)
        for run in hot["runs"]:
            # The 2-generation cache needs more room than the ideal top-k cache.
            assert run["ideal_size"] < run["measured_size"] <= 2 * run["users"]
        measured = [point["measured"] for point in hot["curve"]]
        assert measured == sorted(measured)
        for point in hot["curve"]:
            assert point["measured"] <= point["ideal"] + 0.01


# ---------------------------------------------------------------------------------------
# the Zipf arithmetic against brute force and a real KeyCache (tiny, no services)


def test_harmonic_and_hot_set_match_brute_force() -> None:
    for s in (1.0, 1.2):
        for n in (1, 7, 20_000, 30_001):
            assert _scale_zipf.harmonic(n, s) == pytest.approx(
                math.fsum(k**-s for k in range(1, n + 1)), rel=1e-12
            )
        users = 3_000
        total = math.fsum(k**-s for k in range(1, users + 1))
        running, brute = 0.0, 0
        while running < 0.99 * total:
            brute += 1
            running += brute**-s
        assert _scale_zipf.hot_set(users, s, 0.99) == brute


def test_keycache_under_zipf_matches_the_model_of_its_policy() -> None:
    """300 users, 24 000 requests: the measured hit rate of a real KeyCache is within 2
    points of the model at every size, and below the exact Zipf CDF (the ideal cache)."""
    users, s = 300, 1.0
    stream = _scale_zipf.zipf_stream(users, s, 80 * users, seed=3)
    warm = len(stream) // 2
    for size in (30, 90, 150, 300, 450):
        measured = _scale_zipf.measured_hit_rate(stream, size, warm)
        assert measured == pytest.approx(_scale_zipf.two_gen_hit_rate(size, users, s), abs=0.02)
        assert measured <= _scale_zipf.ideal_hit_rate(size, users, s) + 0.005


def test_keycache_with_room_for_everyone_misses_only_first_sightings() -> None:
    """With both generations larger than the user count nothing is evicted: every miss
    after the warm-up is a user's first request, exactly."""
    users = 200
    stream = _scale_zipf.zipf_stream(users, 1.2, 2_000, seed=5)
    warm = 500
    seen = set(stream[:warm])
    first = 0
    for user_id in stream[warm:]:
        first += user_id not in seen
        seen.add(user_id)
    expected = 1 - first / (len(stream) - warm)
    assert _scale_zipf.measured_hit_rate(stream, 2 * users + 2, warm) == expected
    assert _scale_zipf.smallest_size(stream, users, warm, 1.0) <= 2 * users + 2


# ---------------------------------------------------------------------------------------
# the wiring: sjti bench's flag and report


def test_no_scale_flag_reaches_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def run(*args: Any, **kwargs: Any) -> BenchResult:
        seen.update(kwargs)
        return _result()

    monkeypatch.setattr(sjti.bench._cli, "run", run)
    assert main(["--no-scale", "--plain"]) == 0
    assert seen["scale"] is False
    assert main(["--plain"]) == 0
    assert seen["scale"] is True


def _result() -> BenchResult:
    rows = (
        Measure("sjti.scale_cache_bytes_per_user.uuid_0dev", 180.7, "bytes", "cache", SECTION),
        Measure("sjti.scale_hot_set_99_100m_pct.s1.2", 43.0812, "% of users", "hot", SECTION),
        Measure("sjti.scale_revoke_10m_tenant_s.sqlite", 125.0, "s", "tenant", SECTION),
    )
    return BenchResult(
        rows=(),
        ratios=(),
        machine={"platform": "test", "python": "CPython 3.11", "cpu": "test cpu", "cpus": "1"},
        versions={"sjti": "0"},
        notes=(),
        params={"rounds": 1, "target_ms": 1.0, "stat": "median", "loop_overhead_ns": 1.0},
        measures=rows,
        scale={"sizes": {"disk_users": 10_000, "zipf_users": [300, 1_000]}},
    )


@pytest.mark.parametrize("plain", [True, False])
def test_report_has_a_scale_section_with_its_note(plain: bool) -> None:
    out = io.StringIO()
    render(_result(), out, plain=plain)
    text = out.getvalue()
    assert "43.08 % of users" in text
    assert "125.00 s" in text
    assert "181 bytes" in text
    assert "docs/scale.md" in text
    assert "10,000 users seeded" in text
    assert "node processes" not in text  # the cross-node note belongs to its own section
    assert _result().to_json()["scale"]["sizes"]["disk_users"] == 10_000
