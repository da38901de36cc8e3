"""Chaos soak: three ``sjti serve`` nodes under load while Redis, PostgreSQL and a node die.

``python -m sjti.bench.soak`` (``make soak``) starts its own world on loopback: a private
PostgreSQL cluster (``initdb`` + ``pg_ctl``, trust auth), a private ``redis-server``
without persistence, and three ``sjti serve`` processes sharing both and one key file.
Then, for ``--duration`` seconds, it drives users, logouts, admin revocations and
attackers holding stolen refresh tokens (:mod:`._soak_load`) while faults strike on a
schedule (:mod:`._soak_faults`): Redis ``kill -9``, PostgreSQL immediate stop, one node
``kill -9``, each restarted on the same port.

An independent checker (:mod:`._soak_check`) then judges, from the client's own timings
only, whether any revoked token was accepted after its revocation returned, whether any
answer was a 5xx other than 503, and whether every revocation answered 2xx left its audit
row (read straight from PostgreSQL). The report is JSON (``--json``) and Markdown
(``--markdown``); the exit status is 1 if any must-be-zero number is not zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._core.wrapping import Kek, KekRing
from ._soak_check import MUST_BE_ZERO, Evidence, check
from ._soak_faults import RECOVERY_LIMIT, Chaos, FaultSpec, default_schedule, parse_schedule
from ._soak_infra import MissingTool, PrivatePostgres, PrivateRedis, ServerNode, missing
from ._soak_load import ADMIN, Load, LoadPlan
from ._soak_record import Api, Recorder
from ._soak_report import failures, markdown

__all__ = ["MUST_BE_ZERO", "MissingTool", "SoakConfig", "main", "missing", "run"]

QUICK_LOAD = 14.0
QUICK_SCHEDULE = "redis@1.5,postgres@5,server@8.5"


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """One soak: how long the load runs, which faults, the staleness bound, the seed."""

    duration: float = 60.0
    seed: int = 1
    bound: float = 1.0  # seconds a node other than the revoking one may lag
    schedule: list[FaultSpec] = field(default_factory=list)
    quick: bool = False
    nodes: int = 3

    @classmethod
    def build(
        cls, *, duration: float, seed: int, bound: float, faults: str | None, quick: bool
    ) -> SoakConfig:
        load = QUICK_LOAD if quick else duration
        text = faults if faults is not None else QUICK_SCHEDULE if quick else None
        schedule = parse_schedule(text) if text is not None else default_schedule(load)
        return cls(duration=load, seed=seed, bound=bound, schedule=schedule, quick=quick)


def _server_env(postgres: PrivatePostgres, redis: PrivateRedis) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SJTI_")}
    return {
        **inherited,
        "SJTI_DATABASE_URL": postgres.url,
        "SJTI_REDIS_URL": redis.url,
        "SJTI_KEK": KekRing([Kek.generate("k1")]).to_config(),
        "SJTI_ENV": "production",
        "SJTI_LOGIN_MAX_FAILURES_PER_IP": "1000000",
        "SJTI_LOGIN_MAX_FAILURES": "1000000",
        "SJTI_REGISTRATIONS_PER_IP": "1000000",
    }


def _create_admin(workdir: Path, env: dict[str, str], password: str) -> None:
    """``sjti users create root --admin``: the one way to make an admin."""
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "sjti.cli", "users", "create", ADMIN, "--admin", "--password-stdin"],
        input=password + "\n",
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _read_audit(dsn: str) -> tuple[list[dict[str, Any]], int | None]:
    """The audit trail, and the row count of the events table if there is one."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dsn, connect_timeout=10, row_factory=dict_row) as conn:
        audit = conn.execute(
            "SELECT id, at, actor, reason, kind, count, detail FROM sjti_revocation_audit"
        ).fetchall()
        table = conn.execute("SELECT to_regclass('sjti_revocation_events') AS t").fetchone()
        events: int | None = None
        if table is not None and table["t"] is not None:
            counted = conn.execute("SELECT count(*) AS n FROM sjti_revocation_events").fetchone()
            events = None if counted is None else int(counted["n"])
    return [dict(row) for row in audit], events


def _commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            return out.stdout.strip() + ("+dirty" if dirty else "")
    return None


def _start_nodes(nodes: list[ServerNode]) -> None:
    """The first node creates the key file; the others start once it is ready."""
    nodes[0].start()
    nodes[0].wait_ready()
    for node in nodes[1:]:
        node.start()
    for node in nodes[1:]:
        node.wait_ready()


def run(
    config: SoakConfig,
    *,
    log: Any = None,
    trace: Path | None = None,
    logs: Path | None = None,
) -> dict[str, Any]:
    """Start the world, load it while faults strike, stop it, and judge. The report.

    ``trace``: also write every record the checker read there (JSON lines, tokens cut).
    ``logs``: copy the servers' and PostgreSQL's logs into that directory at the end.
    """
    say = log if log is not None else (lambda _msg: None)
    if lacks := missing():
        raise MissingTool(f"the soak needs {', '.join(lacks)}")
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="sjti-soak-"))
        stack.callback(shutil.rmtree, workdir, True)
        postgres, redis = PrivatePostgres(), PrivateRedis()
        stack.callback(postgres.close)
        stack.callback(redis.close)
        if logs is not None:
            stack.callback(_copy_logs, logs, workdir, Path(postgres.datadir))
        postgres.init()
        redis.start()
        env = _server_env(postgres, redis)
        nodes = [ServerNode(i, workdir, env) for i in range(config.nodes)]
        for node in nodes:
            stack.callback(node.close)
        _start_nodes(nodes)
        say(f"world up in {time.monotonic() - began:.1f} s: PostgreSQL, Redis, 3 nodes")
        rec = Recorder()  # times: seconds since the load began
        api = Api([node.url for node in nodes], rec)
        stack.callback(api.close)
        plan = LoadPlan(
            seed=config.seed,
            nodes=config.nodes,
            bound=config.bound,
            retry_for=10.0 if config.quick else 20.0,
        )
        load = Load(api, plan)
        _create_admin(workdir, env, load.admin_account.password)  # roles come from operators
        load.start()
        chaos = Chaos(rec, postgres, redis, nodes, config.schedule)
        chaos.start(0.0)
        time.sleep(max(0.0, config.duration - rec.now()))
        say("load over: settling revocations, waiting for the last recovery")
        load.stop(timeout=10.0 if config.quick else 25.0)
        chaos.join(RECOVERY_LIMIT + 10)
        load.sweep()
        audit, event_rows = _read_audit(postgres.dsn)
        load_s = rec.now()
    evidence = Evidence(
        requests=rec.requests,
        mints=rec.mints,
        probes=rec.probes,
        refreshes=rec.refreshes,
        revocations=rec.revocations,
        unconfirmed=rec.unconfirmed,
        audit=audit,
        event_rows=event_rows,
        bound=config.bound,
        nodes=config.nodes,
    )
    if trace is not None:
        _write_trace(trace, evidence)
    return _assemble(config, check(evidence), chaos, load_s, time.monotonic() - began)


def _copy_logs(target: Path, workdir: Path, datadir: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log in [*workdir.glob("server-*.log"), datadir / "log"]:
        with contextlib.suppress(OSError):
            shutil.copy(log, target / ("postgres.log" if log.name == "log" else log.name))


def _write_trace(path: Path, evidence: Evidence) -> None:
    """One JSON object per record, times in seconds after the load started."""
    with path.open("w") as out:
        for kind in ("mints", "refreshes", "probes", "revocations", "requests"):
            for item in getattr(evidence, kind):
                row = asdict(item)
                for key in ("access", "refresh"):
                    if key in row:
                        row[key] = row[key][-12:]
                for key in ("start", "end", "root_end"):
                    if key in row:
                        row[key] = round(row[key], 4)
                out.write(json.dumps({"record": kind, **row}) + "\n")


def _assemble(
    config: SoakConfig, numbers: dict[str, Any], chaos: Chaos, load_s: float, wall_s: float
) -> dict[str, Any]:
    faults = [asdict(result) for result in chaos.results]
    recovered: dict[str, float] = {}
    for fault in faults:
        if fault["recovered_s"] is not None:
            recovered[fault["kind"]] = max(recovered.get(fault["kind"], 0.0), fault["recovered_s"])
    report: dict[str, Any] = {
        "config": {
            "load_s": round(load_s, 1),
            "duration_s": config.duration,
            "quick": config.quick,
            "seed": config.seed,
            "bound_ms": config.bound * 1000,
            "nodes": config.nodes,
            "schedule": [f"{spec.kind}@{spec.at:g}" for spec in config.schedule],
        },
        "commit": _commit(),
        "wall_s": round(wall_s, 1),
        **numbers,
        "faults": faults,
        "faults_by_kind": dict(Counter(fault["kind"] for fault in faults)),
        "recover_trust_max_s": recovered,
        "faults_not_recovered": sum(fault["recovered_s"] is None for fault in faults)
        + len(config.schedule)
        - len(faults),
        "unexpected_server_exits": len(chaos.unexpected_exits),
    }
    report["must_be_zero"] = {name: report[name] for name in MUST_BE_ZERO}
    report["failures"] = failures(report)
    report["verdict"] = "fail" if report["failures"] else "pass"
    return report


def _summary(report: dict[str, Any]) -> str:
    lines = [
        f"{report['requests']} requests, {report['revocations']} revocations, "
        f"{report['probes_of_revoked_tokens_after_return']} probes of revoked tokens after "
        f"return, faults {report['faults_by_kind']}, recover trust (max s) "
        f"{report['recover_trust_max_s']}",
    ]
    if report["failures"]:
        lines.append("FAIL: " + ", ".join(report["failures"]))
        for key in (
            "examples",
            "refresh_examples",
            "server_error_examples",
            "lost_examples",
        ):
            value = report.get(key)
            if value:
                lines.append(f"{key}: {json.dumps(value, default=str)[:2000]}")
    else:
        lines.append("PASS: every must-be-zero number is zero")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sjti.bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=60.0, help="load seconds (60)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_LOAD:.0f} s of load, one fault of each kind"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the load's choices")
    parser.add_argument(
        "--bound-ms", type=float, default=1000.0, help="staleness bound on other nodes (1000)"
    )
    parser.add_argument(
        "--faults", help='schedule, e.g. "redis@5,postgres@13,server@21" ("" for none)'
    )
    parser.add_argument("--json", type=Path, help="write the JSON report here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")
    parser.add_argument(
        "--trace", type=Path, help="write every record (JSON lines) here, for a post-mortem"
    )
    parser.add_argument("--logs", type=Path, help="copy the servers' and PostgreSQL's logs here")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one soak; 0 if every must-be-zero number is zero, 1 otherwise."""
    args = _parser().parse_args(argv)
    config = SoakConfig.build(
        duration=args.duration,
        seed=args.seed,
        bound=args.bound_ms / 1000,
        faults=args.faults,
        quick=args.quick,
    )
    # SIGTERM unwinds like Ctrl-C, so every process the soak started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = run(
            config,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
            trace=args.trace,
            logs=args.logs,
        )
    except MissingTool as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(markdown(report))
    print(_summary(report))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
