"""The bench runs end to end, reports every row and target, and refuses cases that cheat."""

from __future__ import annotations

import json
import math
import secrets
from pathlib import Path
from typing import Any

import pytest

import sjti.bench._cli
from sjti import Issuer, SigningKey, UserKey
from sjti.bench import (
    BenchResult,
    Case,
    CaseError,
    Ratio,
    Row,
    compute_ratios,
    expect_claims,
    main,
    minimal_verify,
    precheck,
)

ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
ROWS = (
    "sjti.issue.HS256",
    "sjti.verify_boundary.HS256",
    "sjti.verify_full.HS256",
    "sjti.verify_boundary.EdDSA",
    "sjti.verify_boundary.ES256",
    "sjti.verify_boundary.RS256",
    "floor.ed25519_verify",
    "floor.hmac_sha256",
    "floor.minimal_verify.HS256",
    *(
        f"{peer}.{op}.HS256"
        for peer in ("pyjwt", "joserfc", "authlib", "python_jose")
        for op in ("decode", "encode")
    ),
)
RATIOS = (
    "boundary_hs256_vs_fastest_peer_decode",
    "full_hs256_vs_fastest_peer_decode",
    "issue_hs256_vs_fastest_peer_encode",
    "boundary_eddsa_vs_ed25519_floor",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    """One quick bench for the module: the exit code and the JSON it wrote."""
    path = tmp_path_factory.mktemp("bench") / "b.json"
    code = main(["--quick", "--json", str(path)])
    return code, json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def token() -> tuple[bytes, str]:
    """An HS256 token from the sjti Issuer, and its secret."""
    secret = secrets.token_bytes(32)
    issuer = Issuer(SigningKey.from_secret(secret), issuer=ISSUER, audience=AUDIENCE)
    return secret, issuer.issue("user-1", UserKey.generate())


def test_quick_run_exits_zero_and_reports_every_row(quick_run: tuple[int, dict[str, Any]]) -> None:
    """The CLI wiring relies on exit code 0 and on these exact row names in the JSON."""
    code, document = quick_run
    names = [row["name"] for row in document["rows"]]
    assert code == 0
    assert set(ROWS) <= set(names)
    assert len(names) == len(set(names))


def test_json_rows_keep_their_shape(quick_run: tuple[int, dict[str, Any]]) -> None:
    """Consumers read rows as exactly {name, ns_per_op}; extras belong at the top level."""
    _, document = quick_run
    assert all(set(row) == {"name", "ns_per_op"} for row in document["rows"])


def test_every_time_is_positive_and_finite(quick_run: tuple[int, dict[str, Any]]) -> None:
    """A zero, negative or infinite ns/op would poison every ratio built on it."""
    _, document = quick_run
    for row in document["rows"]:
        value = row["ns_per_op"]
        assert type(value) is float
        assert math.isfinite(value)
        assert value > 0


def test_every_target_ratio_is_computed(quick_run: tuple[int, dict[str, Any]]) -> None:
    """With the peers installed in dev, every target gets a value and a verdict."""
    _, document = quick_run
    ratios = document["ratios"]
    assert set(RATIOS) <= set(ratios)
    for name in RATIOS:
        assert math.isfinite(ratios[name]["value"])
        assert ratios[name]["value"] > 0
        assert type(ratios[name]["pass"]) is bool


def test_precheck_accepts_a_correct_case(token: tuple[bytes, str]) -> None:
    """The checker must let an honest verifier through, or the refusal tests prove nothing."""
    secret, signed = token
    claims = minimal_verify(signed, secret)
    # Change the first signature character: the last one partly holds unused bits that a
    # lenient decoder (like this floor's stdlib base64) ignores.
    head, _, signature = signed.rpartition(".")
    forged = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    case = Case(
        "honest",
        "floor",
        "verify",
        lambda: minimal_verify(signed, secret),
        expect_claims(claims),
        (("a forged signature", lambda: minimal_verify(forged, secret)),),
    )
    precheck(case)


def test_precheck_refuses_a_decode_with_wrong_claims(
    token: tuple[bytes, str],
) -> None:
    """A decode that returns the wrong claims must never be timed."""
    secret, signed = token
    claims = minimal_verify(signed, secret)
    case = Case(
        "broken",
        "peer",
        "verify",
        lambda: {**minimal_verify(signed, secret), "sub": "someone-else"},
        expect_claims(claims),
    )
    with pytest.raises(CaseError, match="differ"):
        precheck(case)


def test_precheck_refuses_a_decode_that_skips_the_signature(
    token: tuple[bytes, str],
) -> None:
    """A decode that never checks signatures returns the right claims fast: refuse it."""
    secret, signed = token
    claims = minimal_verify(signed, secret)
    case = Case(
        "unchecked",
        "peer",
        "verify",
        lambda: claims,
        expect_claims(claims),
        (("a forged signature", lambda: claims),),
    )
    with pytest.raises(CaseError, match="accepted a forged signature"):
        precheck(case)


def test_precheck_refuses_a_case_that_raises() -> None:
    """A case that fails outright is refused with its name, not timed as a fast error path."""
    case = Case("raises", "peer", "verify", lambda: 1 / 0, expect_claims({}))
    with pytest.raises(CaseError, match="raises: raised ZeroDivisionError"):
        precheck(case)


def test_ratios_flag_a_missed_target_and_skip_missing_peers() -> None:
    """Ratios use the fastest peer present; a missing row gives no value, not a failure."""
    ratios = {
        r.name: r
        for r in compute_ratios(
            {
                "sjti.verify_boundary.HS256": 10.0,
                "pyjwt.decode.HS256": 50.0,
                "joserfc.decode.HS256": 30.0,
                "sjti.verify_boundary.EdDSA": 105.0,
                "floor.ed25519_verify": 100.0,
            }
        )
    }
    boundary = ratios["boundary_hs256_vs_fastest_peer_decode"]
    assert (boundary.baseline, boundary.value, boundary.passed) == (
        "joserfc.decode.HS256",
        3.0,
        False,
    )
    assert ratios["boundary_eddsa_vs_ed25519_floor"].passed is True
    assert (
        ratios["issue_hs256_vs_fastest_peer_encode"].value,
        ratios["issue_hs256_vs_fastest_peer_encode"].passed,
    ) == (None, None)


def _fake_result(ratio_value: float) -> BenchResult:
    rows = (
        Row("sjti.verify_boundary.HS256", "sjti", "verify", 10.0, 9.0, 10.0, 11.0, 1000, 3),
        Row("pyjwt.decode.HS256", "peer", "verify", 20.0, 19.0, 20.0, 21.0, 500, 3),
    )
    ratio = Ratio(
        "boundary_hs256_vs_fastest_peer_decode",
        "boundary HS256 vs fastest peer decode",
        "sjti.verify_boundary.HS256",
        "pyjwt.decode.HS256",
        ratio_value,
        ">=",
        3.5,
    )
    return BenchResult(
        rows=rows,
        ratios=(ratio,),
        machine={"platform": "test", "python": "CPython 3.11", "cpu": "test cpu", "cpus": "1"},
        versions={"sjti": "0"},
        notes=("a note",),
        params={"rounds": 3, "target_ms": 1.0, "stat": "median", "loop_overhead_ns": 20.0},
    )


@pytest.mark.parametrize("plain", [True, False])
def test_check_fails_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], plain: bool
) -> None:
    """A missed target is reported but exits 0, unless --check makes it a failure."""
    monkeypatch.setattr(sjti.bench._cli, "run", lambda *args, **kwargs: _fake_result(2.0))
    extra = ["--plain"] if plain else []
    assert main(extra) == 0
    assert "MISS" in capsys.readouterr().out
    assert main(["--check", *extra]) == 1
    monkeypatch.setattr(sjti.bench._cli, "run", lambda *args, **kwargs: _fake_result(4.0))
    assert main(["--check", *extra]) == 0


def test_json_to_stdout_is_pure_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --json -, the table goes to stderr so stdout can be piped into a JSON tool."""
    monkeypatch.setattr(sjti.bench._cli, "run", lambda *args, **kwargs: _fake_result(4.0))
    assert main(["--json", "-"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["rows"] == [
        {"name": "sjti.verify_boundary.HS256", "ns_per_op": 10.0},
        {"name": "pyjwt.decode.HS256", "ns_per_op": 20.0},
    ]
    assert "sjti.verify_boundary.HS256" in out.err


def test_precheck_refuses_a_result_its_check_cannot_read() -> None:
    """A check that trips over a result (e.g. an unsigned token) refuses, never crashes."""

    def check(result: object) -> str | None:
        raise ValueError("not a token")

    case = Case("garbled", "peer", "sign", lambda: b"garbage", check)
    with pytest.raises(CaseError, match="garbled: result refused"):
        precheck(case)


def test_markdown_page_carries_the_table_and_how_to_regenerate_it(tmp_path: Path) -> None:
    """docs/benchmark.md is generated, never typed: it must say which command made it."""
    page = tmp_path / "benchmark.md"
    code = main(["--quick", "--rounds", "1", "--target-ms", "0.5", "--markdown", str(page)])
    text = page.read_text(encoding="utf-8")
    assert code == 0
    assert "sjti bench --markdown docs/benchmark.md" in text
    assert "sjti.verify_boundary.HS256" in text
    assert text.count("```") == 2
