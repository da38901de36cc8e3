"""The per-device bench rows: checked like every row (claims returned, a signed-out
device refused), and the record sizes measured on the encodings themselves."""

from __future__ import annotations

from sjti.bench._cases import make_fixture, precheck
from sjti.bench._devices import DEVICE_CACHED, DEVICE_KEY, device_cases, device_measures
from sjti.bench._result import compute_ratios


def test_the_device_rows_pass_their_checks() -> None:
    cases = device_cases(make_fixture())
    assert [case.name for case in cases] == [DEVICE_KEY, DEVICE_CACHED]
    for case in cases:
        precheck(case)  # raises CaseError if a claim is wrong or the signed-out device passes


def test_record_sizes_grow_by_one_device_id_per_device() -> None:
    values = {m.name: m.value for m in device_measures()}
    assert values["sjti.device_record_cache_bytes_1"] == 32 + 1 + 16
    assert values["sjti.device_record_cache_bytes_100"] == 32 + 1 + 100 * 16
    assert values["sjti.device_record_db_bytes_10"] == 10 * 22 + 9
    assert values["sjti.device_record_db_bytes_100"] == 100 * 22 + 99


def test_the_device_targets_are_computed_from_the_rows() -> None:
    ratios = {
        r.name: r
        for r in compute_ratios(
            {DEVICE_KEY: 100.0, DEVICE_CACHED: 110.0, "sjti.verify_full.HS256": 95.0}
        )
    }
    cached = ratios["full_cached_device_vs_key_in_hand"]
    assert (cached.value, cached.passed) == (1.1, True)
    check = ratios["device_check_vs_no_devices"]
    assert check.passed is True
    assert check.value is not None
    assert round(check.value, 3) == round(100.0 / 95.0, 3)
