"""The bench runs end to end, reports every row and target, and refuses cases that cheat."""

from __future__ import annotations

import contextlib
import io
import json
import math
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sjti.bench._cli
import sjti.bench.multinode
from sjti import Issuer, Kek, KekRing, SigningKey, UserKey
from sjti.bench import (
    BenchResult,
    Case,
    CaseError,
    Ratio,
    Row,
    _backends,
    compute_ratios,
    expect_claims,
    main,
    minimal_verify,
    precheck,
)
from sjti.bench._cases import make_fixture
from sjti.bench._report import render, render_markdown
from sjti.bench._result import Measure
from sjti.cache import CachedKeys, KeyCache

ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
ROWS = (
    "sjti.issue.HS256",
    "sjti.verify_boundary.HS256",
    "sjti.verify_full.HS256",
    "sjti.verify_full_cached.HS256",
    "sjti.verify_full_sqlite.HS256",
    "sjti.verify_boundary.EdDSA",
    "sjti.verify_boundary.ES256",
    "sjti.verify_boundary.RS256",
    "floor.ed25519_verify",
    "floor.hmac_sha256",
    "floor.minimal_verify.HS256",
    "floor.sqlite_select_pk",
    *(
        f"{peer}.{op}.HS256"
        for peer in ("pyjwt", "joserfc", "authlib", "python_jose")
        for op in ("decode", "encode")
    ),
)
# Rows that need PostgreSQL (and Redis, for the rows measured on a cluster).
ACK_ROWS = ("sjti.revoke_ack_all_p50_ms", "sjti.revoke_ack_all_p99_ms")
INCOMPLETE_ROW = "sjti.revoke_ack_all_incomplete"
SERVICE_ROWS = (
    "sjti.verify_full_postgres.HS256",
    "sjti.verify_full_postgres_async.HS256",
    "floor.pg_select_pk",
    "sjti.revoke_propagation_p50_ms",
    "sjti.revoke_propagation_p99_ms",
    *ACK_ROWS,
    INCOMPLETE_ROW,
)
MS_ROWS = ("sjti.revoke_propagation_p50_ms", "sjti.revoke_propagation_p99_ms")
# Measured on PostgreSQL and Redis when they answer, else on SQLite: in every run.
CATCHUP_ROWS = ("sjti.catchup_after_outage_ms", "sjti.catchup_after_outage_clear_ms")
RATIOS = (
    "boundary_hs256_vs_fastest_peer_decode",
    "full_hs256_vs_fastest_peer_decode",
    "issue_hs256_vs_fastest_peer_encode",
    "boundary_eddsa_vs_ed25519_floor",
    "full_cached_hs256_vs_key_in_hand",
    "sqlite_miss_vs_driver_floor",
)
PROPAGATION_RATIO = "revoke_propagation_p99"
ACK_RATIOS = ("revoke_ack_all_p99", "revoke_ack_all_complete")
CATCHUP_RATIO = "catchup_replay_vs_clear"
# The bulk revocation rows, per database, and their units (quick: 20 000 users).
BULK_UNITS = {
    "revoke_users_per_s": "users/s",
    "revoke_10pct_users_per_s": "users/s",
    "rss_growth_mb": "MB",
    "revoke_bus_messages": "messages",
    "preview_vs_revoke_pct": "%",
    "rewrap_rows_per_s": "rows/s",
}


def bulk_units(*databases: str) -> dict[str, str]:
    return {f"sjti.bulk_{what}.{db}": unit for db in databases for what, unit in BULK_UNITS.items()}


def _run_json(path: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["--quick", "--json", str(path), *argv])
    return code, json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    """One quick bench without services: the exit code and the JSON it wrote."""
    return _run_json(tmp_path_factory.mktemp("bench") / "b.json", "--no-services")


@pytest.fixture(scope="module")
def service_run(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, redis_url: str
) -> tuple[int, dict[str, Any]]:
    """One quick bench with PostgreSQL and Redis (the test session's, found by conftest);
    the scale rows are left out (tests/bench/test_scale.py runs them on PostgreSQL)."""
    path = tmp_path_factory.mktemp("bench") / "s.json"
    argv = ("--postgres-url", postgres_server_url, "--redis-url", redis_url, "--no-scale")
    return _run_json(path, *argv)


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
    # the scale section, on SQLite, derived from this run's bulk rows too
    assert document["units"]["sjti.scale_revoke_10m_tenant_s.sqlite"] == "s"
    assert document["scale"]["disk"].keys() == {"sqlite"}


def test_no_services_leaves_out_the_service_rows(quick_run: tuple[int, dict[str, Any]]) -> None:
    """--no-services: no PostgreSQL or cluster rows, their targets n/a; catch-up on SQLite."""
    _, document = quick_run
    names = {row["name"] for row in document["rows"]}
    assert not names & set(SERVICE_ROWS)
    expected = {**dict.fromkeys(CATCHUP_ROWS, "ms"), **bulk_units("sqlite")}
    assert expected.items() <= document["units"].items()
    ms_rows = {name for name, unit in document["units"].items() if unit == "ms"}
    assert ms_rows == set(CATCHUP_ROWS)  # nothing measured across nodes
    assert document["propagation"] is None
    assert document["acknowledgement"] is None
    assert (document["params"]["postgres"], document["params"]["redis"]) == (None, None)
    for name in (PROPAGATION_RATIO, *ACK_RATIOS):
        ratio = document["ratios"][name]
        assert (ratio["value"], ratio["pass"]) == (None, None)
    assert document["ratios"][PROPAGATION_RATIO]["unit"] == "ms"


def test_no_services_still_measures_the_catchup_on_sqlite(
    quick_run: tuple[int, dict[str, Any]],
) -> None:
    """Without services the catch-up runs on a SQLite file with the log-polling bus."""
    _, document = quick_run
    values = {row["name"]: row["ns_per_op"] for row in document["rows"]}
    details = document["catchup"]
    assert set(CATCHUP_ROWS) <= set(values)
    assert (details["database"], details["bus"]) == ("sqlite", "log-poll")
    assert (details["users"], details["events"], details["trials"]) == (500, 250, 1)
    assert details["replay"]["misses"] == details["revoked_users"] == 5
    assert details["clear"]["misses"] == 500
    ratio = document["ratios"][CATCHUP_RATIO]
    assert ratio["baseline"] == "sjti.catchup_after_outage_clear_ms"
    assert math.isfinite(ratio["value"])
    assert type(ratio["pass"]) is bool


@pytest.mark.service
def test_service_run_reports_the_service_rows(service_run: tuple[int, dict[str, Any]]) -> None:
    """With PostgreSQL and Redis answering, every row is there, none skipped."""
    code, document = service_run
    names = [row["name"] for row in document["rows"]]
    assert code == 0
    assert set(ROWS) | set(SERVICE_ROWS) <= set(names)
    assert len(names) == len(set(names))
    assert not [note for note in document["notes"] if "skipped" in note and "sjti." in note]
    assert all(set(row) == {"name", "ns_per_op"} for row in document["rows"])
    for row in document["rows"]:
        assert type(row["ns_per_op"]) is float
        assert math.isfinite(row["ns_per_op"])
        if row["name"] != INCOMPLETE_ROW:  # a count, 0 when every ack was complete
            assert row["ns_per_op"] > 0


@pytest.mark.service
def test_service_run_says_the_propagation_rows_are_milliseconds(
    service_run: tuple[int, dict[str, Any]],
) -> None:
    """The ms rows share the {name, ns_per_op} shape; "units" says what they hold."""
    _, document = service_run
    values = {row["name"]: row["ns_per_op"] for row in document["rows"]}
    expected = {
        **dict.fromkeys((*MS_ROWS, *ACK_ROWS, *CATCHUP_ROWS), "ms"),
        INCOMPLETE_ROW: "acks",
        **bulk_units("sqlite", "postgresql"),
    }
    assert expected.items() <= document["units"].items()
    ms_rows = {name for name, unit in document["units"].items() if unit == "ms"}
    assert ms_rows == {*MS_ROWS, *ACK_ROWS, *CATCHUP_ROWS}
    assert set(MS_ROWS) <= set(values)
    assert set(MS_ROWS).isdisjoint(document["stats"])  # not a per-op timing
    assert values["sjti.revoke_propagation_p50_ms"] <= values["sjti.revoke_propagation_p99_ms"]
    details = document["propagation"]
    assert details["nodes"] == 3
    assert details["revocations"] == 20  # the --quick count
    assert details["accepted_after_window"] == 0
    assert details["outcomes"] == {"done": 20}
    assert details["p99_ms"] == values["sjti.revoke_propagation_p99_ms"]


@pytest.mark.service
def test_service_run_acknowledges_every_revocation(
    service_run: tuple[int, dict[str, Any]],
) -> None:
    """revoke(wait="all") on the cluster: rows with numbers, and no incomplete ack."""
    _, document = service_run
    values = {row["name"]: row["ns_per_op"] for row in document["rows"]}
    details = document["acknowledgement"]
    assert values[INCOMPLETE_ROW] == 0.0
    assert details["incomplete"] == 0
    assert details["accepted_after_ack"] == 0
    assert (details["nodes"], details["live_nodes"], details["acknowledged_min"]) == (3, 3, 3)
    assert details["revocations"] == 20  # the --quick count
    assert details["p99_ms"] == values["sjti.revoke_ack_all_p99_ms"]
    assert 0 < values["sjti.revoke_ack_all_p50_ms"] <= values["sjti.revoke_ack_all_p99_ms"]
    for name in ACK_RATIOS:
        ratio = document["ratios"][name]
        assert math.isfinite(ratio["value"])
        assert type(ratio["pass"]) is bool
    assert document["ratios"]["revoke_ack_all_complete"]["pass"] is True


@pytest.mark.service
def test_service_run_measures_the_catchup_on_postgres_and_redis(
    service_run: tuple[int, dict[str, Any]],
) -> None:
    """With the services the catch-up node uses the scratch PostgreSQL and the Redis bus."""
    _, document = service_run
    values = {row["name"]: row["ns_per_op"] for row in document["rows"]}
    details = document["catchup"]
    assert (details["database"], details["bus"]) == ("postgresql", "redis")
    assert details["replay"]["total_ms"] == values["sjti.catchup_after_outage_ms"]
    assert details["clear"]["total_ms"] == values["sjti.catchup_after_outage_clear_ms"]
    assert details["ratio"] == document["ratios"][CATCHUP_RATIO]["value"]
    assert type(document["ratios"][CATCHUP_RATIO]["pass"]) is bool


@pytest.mark.service
def test_service_run_computes_the_new_targets(service_run: tuple[int, dict[str, Any]]) -> None:
    """Cache hit vs key in hand (x) and propagation p99 (ms): both get a value and a verdict."""
    _, document = service_run
    ratios = document["ratios"]
    cached = ratios["full_cached_hs256_vs_key_in_hand"]
    assert (cached["baseline"], cached["op"], cached["target"]) == (
        "sjti.verify_full.HS256",
        "<=",
        1.2,
    )
    p99 = ratios[PROPAGATION_RATIO]
    assert (p99["subject"], p99["baseline"], p99["unit"], p99["target"]) == (
        "sjti.revoke_propagation_p99_ms",
        None,
        "ms",
        50.0,
    )
    for ratio in (cached, p99):
        assert math.isfinite(ratio["value"])
        assert ratio["value"] > 0
        assert type(ratio["pass"]) is bool
    assert document["params"]["postgres"] is not None
    assert document["params"]["redis"] is not None


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


def test_miss_targets_count_the_time_above_the_key_in_hand_in_floors() -> None:
    """(store miss - verify_full) / driver floor, against 2 (SQLite) and 1.3 (PostgreSQL)."""
    ratios = {
        r.name: r
        for r in compute_ratios(
            {
                "sjti.verify_full.HS256": 10.0,
                "sjti.verify_full_sqlite.HS256": 30.0,
                "floor.sqlite_select_pk": 8.0,
                "sjti.verify_full_postgres.HS256": 150.0,
                "floor.pg_select_pk": 100.0,
            }
        )
    }
    sqlite, postgres = (
        ratios["sqlite_miss_vs_driver_floor"],
        ratios["postgres_miss_vs_driver_floor"],
    )
    assert (sqlite.value, sqlite.target, sqlite.passed) == (2.5, 2.0, False)
    assert (sqlite.baseline, sqlite.offset) == ("floor.sqlite_select_pk", "sjti.verify_full.HS256")
    assert (postgres.value, postgres.target, postgres.passed) == (1.4, 1.3, False)
    fast = compute_ratios(
        {
            "sjti.verify_full.HS256": 10.0,
            "sjti.verify_full_postgres.HS256": 120.0,
            "floor.pg_select_pk": 100.0,
        }
    )
    by_name = {r.name: r for r in fast}
    assert by_name["postgres_miss_vs_driver_floor"].passed is True
    assert by_name["sqlite_miss_vs_driver_floor"].value is None


def test_quick_run_revokes_a_bulk_cohort_on_sqlite(quick_run: tuple[int, dict[str, Any]]) -> None:
    """The bulk rows: 20 000 users in quick mode, two batches (events) for everyone."""
    _, document = quick_run
    values = {row["name"]: row["ns_per_op"] for row in document["rows"]}
    assert document["params"]["bulk_users"] == 20_000
    assert document["bulk"]["users"] == 20_000
    assert list(document["bulk"]["runs"]) == ["sqlite"]
    assert values["sjti.bulk_revoke_bus_messages.sqlite"] == 2.0
    assert values["sjti.bulk_revoke_users_per_s.sqlite"] > 0
    ratio = document["ratios"]["bulk_revoke_sqlite"]
    assert (ratio["unit"], ratio["target"]) == ("users/s", 100_000)
    assert type(ratio["pass"]) is bool
    assert document["ratios"]["bulk_revoke_postgresql"]["pass"] is None


@pytest.mark.service
def test_service_run_times_the_driver_floors_and_the_async_miss(
    service_run: tuple[int, dict[str, Any]],
) -> None:
    """The PostgreSQL floor and the async miss are timed, and the miss target has a value."""
    _, document = service_run
    values = {row["name"]: row["ns_per_op"] for row in document["rows"]}
    assert values["floor.pg_select_pk"] > 0
    assert values["sjti.verify_full_postgres_async.HS256"] > 0
    assert document["stats"]["floor.pg_select_pk"]["group"] == "floor"
    ratio = document["ratios"]["postgres_miss_vs_driver_floor"]
    assert ratio["offset"] == "sjti.verify_full.HS256"
    assert math.isfinite(ratio["value"])
    assert type(ratio["pass"]) is bool


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
    argv = ["--quick", "--rounds", "1", "--target-ms", "0.5", "--no-services", "--no-scale"]
    code = main([*argv, "--markdown", str(page)])
    text = page.read_text(encoding="utf-8")
    assert code == 0
    assert "sjti bench --markdown docs/benchmark.md" in text
    assert "sjti.verify_boundary.HS256" in text
    assert text.count("```") == 2


# ---------------------------------------------------------------------------------------
# the store and propagation rows cannot post a number for a broken setup


def _sqlite_store(tmp_path: Path) -> Any:
    import sqlalchemy as sa

    from sjti.stores.sql import SqlSecretStore, upgrade

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bench.db'}")
    upgrade(engine)
    return SqlSecretStore(engine, KekRing([Kek.generate("test")]))


def test_precheck_refuses_a_cache_the_store_does_not_invalidate(tmp_path: Path) -> None:
    """A cache that kept a revoked user's key would be fast and wrong: never timed."""
    fx = make_fixture()
    store = _sqlite_store(tmp_path)
    cached = CachedKeys(store, cache=KeyCache(trusted=True))  # no listener
    prepared = _backends._prepare(fx, store, warm=(cached.get,))
    _, case = _backends._verify_case("stale", fx, prepared, cached.get)
    with pytest.raises(CaseError, match="stale: accepted the token of a revoked user"):
        precheck(case)
    store.engine.dispose()


def test_store_cases_pass_their_precheck() -> None:
    """The cache-hit, SQLite and SQLite-floor cases as the bench builds them are honest."""
    fx = make_fixture()
    with contextlib.ExitStack() as stack:
        cases = _backends._sqlite_cases(fx, stack)
        assert [c.name for c in cases] == [
            _backends.CACHED,
            _backends.SQLITE,
            _backends.SQLITE_FLOOR,
        ]
        for case in cases:
            precheck(case)


class _FakeNode:
    """Answers like a node of sjti.bench._node, with a chosen bug."""

    def __init__(self, accepts: str) -> None:
        # "never", "always", "until-revoked", or "ack-lies" (an acknowledged revocation
        # reaches nobody)
        self.accepts = accepts
        self.revoked: set[str] = set()
        self.peers: list[_FakeNode] = []

    def ask(self, command: str) -> str:
        verb, _, argument = command.partition(" ")
        if verb == "issue":
            return f"token-for-{argument}"
        if verb in ("revoke", "revoke-ack"):
            user = argument.partition(" ")[0]
            if verb == "revoke" or self.accepts != "ack-lies":
                for node in (self, *self.peers):
                    node.revoked.add(f"token-for-{user}")
            if verb == "revoke":
                return "done"
            ack = {"ms": 1.5, "event": 1, "complete": True, "acknowledged": 3, "pending": 0}
            return json.dumps(ack)
        if verb == "live":
            return json.dumps(["a", "b", "c"])
        if self.accepts == "never" or (self.accepts != "always" and argument in self.revoked):
            return "revoked"
        return "accepted"

    def close(self) -> None:
        pass


def _fake_cluster(monkeypatch: pytest.MonkeyPatch, accepts: str) -> None:
    @contextlib.contextmanager
    def cluster(database_url: str, redis_url: str, *, nodes: int = 3) -> Iterator[list[Any]]:
        made = [_FakeNode(accepts) for _ in range(nodes)]
        made[0].peers = made[1:]
        yield made

    monkeypatch.setattr(sjti.bench.multinode, "cluster", cluster)
    monkeypatch.setattr(_backends, "DEADLINE_S", 0.05)


def test_propagation_of_honest_nodes_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cluster(monkeypatch, "until-revoked")
    outcome = _backends.measure_revocation("db", "redis", 5)
    assert not isinstance(outcome, str)
    assert [m.name for m in outcome.measures] == [*MS_ROWS, *ACK_ROWS, INCOMPLETE_ROW]
    assert [m.unit for m in outcome.measures] == ["ms"] * 4 + ["acks"]
    details = outcome.propagation
    assert (details["revocations"], details["outcomes"]) == (5, {"done": 5})
    acked = outcome.acknowledgement
    assert (acked["revocations"], acked["incomplete"], acked["p99_ms"]) == (5, 0, 1.5)


def test_acknowledgement_that_lets_a_token_through_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A complete ack promises every node refuses: a node still accepting fails the run."""
    _fake_cluster(monkeypatch, "ack-lies")
    with pytest.raises(CaseError, match="accepted after every node had acknowledged"):
        _backends.measure_revocation("db", "redis", 5)


@pytest.mark.parametrize(
    ("accepts", "problem"),
    [
        ("never", "refused a valid token before its revocation"),
        ("always", "still accepted a revoked token"),
    ],
)
def test_propagation_refuses_nodes_that_misbehave(
    monkeypatch: pytest.MonkeyPatch, accepts: str, problem: str
) -> None:
    """Nodes refusing everything would post ~0 ms; nodes never refusing, the deadline."""
    _fake_cluster(monkeypatch, accepts)
    with pytest.raises(CaseError, match=problem):
        _backends.measure_revocation("db", "redis", 5)


def test_catchup_with_a_node_that_misses_the_replay_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay that does not drop the revoked users would serve them from the cache: a
    fast number for a wrong answer, never reported."""
    monkeypatch.setattr(KeyCache, "invalidate", lambda self, user_ids, event=None: None)
    with contextlib.ExitStack() as stack, pytest.raises(CaseError, match="wrong verdict"):
        _backends.measure_outage(None, None, stack, users=40, events=8, trials=1)


def test_catchup_on_sqlite_replays_only_what_it_missed() -> None:
    """Replay: the revoked users miss, nobody else; clear: everyone misses."""
    with contextlib.ExitStack() as stack:
        measures, details = _backends.measure_outage(
            None, None, stack, users=200, events=30, trials=2
        )
    assert [m.name for m in measures] == list(CATCHUP_ROWS)
    assert all(m.section == "catch-up after a bus outage" for m in measures)
    assert (details["database"], details["bus"], details["revoked_users"]) == (
        "sqlite",
        "log-poll",
        2,
    )
    assert (details["replay"]["misses"], details["clear"]["misses"]) == (2, 200)
    assert len(details["replay"]["all_ms"]) == len(details["clear"]["all_ms"]) == 2


def _result_with_measures() -> BenchResult:
    base = _fake_result(4.0)
    measures = (
        Measure("sjti.revoke_propagation_p50_ms", 1.5, "ms", "median"),
        Measure("sjti.revoke_propagation_p99_ms", 3.25, "ms", "99th percentile"),
        Measure(INCOMPLETE_ROW, 0.0, "acks", "incomplete"),
        Measure(
            "sjti.catchup_after_outage_ms", 40.0, "ms", "replay", "catch-up after a bus outage"
        ),
    )
    p99 = Ratio(
        PROPAGATION_RATIO, "p99", "sjti.revoke_propagation_p99_ms", None, 3.25, "<=", 50.0, "ms"
    )
    return BenchResult(
        rows=base.rows,
        ratios=(*base.ratios, p99),
        machine=base.machine,
        versions=base.versions,
        notes=base.notes,
        params=base.params,
        measures=measures,
        propagation={"nodes": 3, "revocations": 20},
    )


def test_measures_keep_the_row_shape_and_say_their_unit() -> None:
    document = _result_with_measures().to_json()
    assert document["rows"][-4:] == [
        {"name": "sjti.revoke_propagation_p50_ms", "ns_per_op": 1.5},
        {"name": "sjti.revoke_propagation_p99_ms", "ns_per_op": 3.25},
        {"name": INCOMPLETE_ROW, "ns_per_op": 0.0},
        {"name": "sjti.catchup_after_outage_ms", "ns_per_op": 40.0},
    ]
    assert document["units"] == {
        **dict.fromkeys(MS_ROWS, "ms"),
        INCOMPLETE_ROW: "acks",
        "sjti.catchup_after_outage_ms": "ms",
    }
    assert set(document["stats"]) == {"sjti.verify_boundary.HS256", "pyjwt.decode.HS256"}
    assert document["ratios"][PROPAGATION_RATIO]["pass"] is True


@pytest.mark.parametrize("plain", [True, False])
def test_report_shows_measures_in_their_own_section(plain: bool) -> None:
    """Milliseconds never land in the ns/op table; the section says they are ms."""
    out = io.StringIO()
    render(_result_with_measures(), out, plain=plain)
    text = out.getvalue()
    table, _, rest = text.partition("revocation across nodes")
    assert "sjti.revoke_propagation" not in table
    assert "3.25 ms" in rest
    assert "0 acks" in rest
    assert "milliseconds" in rest
    assert "≤ 50 ms" in rest
    nodes, _, catchup = rest.partition("catch-up after a bus outage")
    assert "sjti.catchup_after_outage_ms" not in nodes
    assert "40.00 ms" in catchup
    assert "sjti.revoke_propagation_p99_ms" in render_markdown(_result_with_measures())
