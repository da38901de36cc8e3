"""The service against its peer over HTTP, in the shapes people deploy.

Per shape (``sqlite``: SQLite x 1 worker; ``postgres``: PostgreSQL + Redis x 2 workers)
the bench starts sjti's server (``sjti serve``, as shipped) and a peer built on
fastapi-users (JWT strategy, SQLAlchemy adapter; :mod:`._http_peer`) on the same database
engine with the same worker count and launcher, and on SQLite a twin of sjti's server
whose ``/me`` loads the user without checking the token (what auth costs). One load
generator (``wrk`` when installed, else httpx) drives, in turn and alternated (forward
then backward, so drift cancels), each server's ``/me`` and each framework's ceiling
(``/healthz``, the same trivial route in both). Per run: req/s, p50/p99, errors and
timeouts, server CPU per request (``/proc`` of the server's processes); per server:
database connections opened (PostgreSQL's ``pg_stat_database.sessions``, on a private
database) and bus drops (the service's log). Then the issue's targets, as ratios.
Run it: ``python -m sjti.bench.http`` (``--quick`` for seconds, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from .._engine import POOL_SIZE
from ._http_infra import (
    ServerProcess,
    postgres_database,
    private_redis,
    sessions_opened,
)
from ._http_load import Load, httpx_load, wrk_installed, wrk_load

__all__ = ["HttpResult", "Row", "ShapeResult", "Target", "main", "run"]

_PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench user
_SECRET = "bench-peer-secret-" + "x" * 32  # the peer's throwaway JWT key
SJTI, PEER, NO_AUTH = "sjti", "fastapi-users", "sjti-no-auth"
SHAPES = ("sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_WORKERS = {"sqlite": 1, "postgres": 2}


@dataclass(frozen=True, slots=True)
class Row:
    """One server and route under load, both alternated halves together."""

    server: str
    route: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    timeouts: int
    requests: int
    cpu_ms_per_request: float


@dataclass(frozen=True, slots=True)
class ShapeResult:
    shape: str
    workers: int
    rows: tuple[Row, ...]
    # per server: connections opened during its load (PostgreSQL only), normalised to 20 s
    connections_per_20s: dict[str, float] = field(default_factory=dict)
    bus_drops: dict[str, int] = field(default_factory=dict)

    def row(self, server: str, route: str) -> Row | None:
        return next((r for r in self.rows if r.server == server and r.route == route), None)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float | None
    op: Literal[">=", "<="]
    target: float
    unit: str = "x"

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target


@dataclass(frozen=True, slots=True)
class HttpResult:
    generator: str
    seconds: float
    connections: int
    machine: str
    shapes: tuple[ShapeResult, ...]

    def shape(self, name: str) -> ShapeResult | None:
        return next((s for s in self.shapes if s.shape == name), None)

    @property
    def clean(self) -> bool:
        """The correctness check: every request answered 2xx, none timed out."""
        return all(r.errors == 0 and r.timeouts == 0 for s in self.shapes for r in s.rows)

    def targets(self) -> tuple[Target, ...]:
        found: list[Target] = []
        for shape in self.shapes:
            mine, peer = shape.row(SJTI, "/me"), shape.row(PEER, "/users/me")
            ratio = mine.rps / peer.rps if mine and peer and peer.rps else None
            found.append(Target(f"{shape.shape}: sjti /me vs fastapi-users", ratio, ">=", 1.5))
            if shape.workers > 1:
                ceiling = shape.row(SJTI, "/healthz")
                p50 = ceiling.p50_ms if ceiling else None
                found.append(
                    Target(
                        f"{shape.shape}: /healthz p50, {shape.workers} workers",
                        p50,
                        "<=",
                        5.0,
                        "ms",
                    )
                )
            bound = 2 * shape.workers * POOL_SIZE
            for server, opened in shape.connections_per_20s.items():
                found.append(
                    Target(
                        f"{shape.shape}: {server} connections opened per 20 s",
                        opened,
                        "<=",
                        bound,
                        "",
                    )
                )
            for server, drops in shape.bus_drops.items():
                found.append(Target(f"{shape.shape}: {server} bus drops", drops, "<=", 0, ""))
        one, two = self.shape("sqlite"), self.shape("postgres")
        if one and two:
            low, high = one.row(SJTI, "/healthz"), two.row(SJTI, "/healthz")
            scale = high.rps / low.rps if low and high and low.rps else None
            found.append(Target("ceiling: 2 workers vs 1", scale, ">=", 1.7))
        return tuple(found)


Generator = Callable[[str, str | None, float, int], Load]


@dataclass
class _Server:
    name: str
    process: ServerProcess
    token: str
    database: str | None = None  # the private PostgreSQL database it alone uses


def _sjti_token(url: str) -> tuple[str, str]:
    """Register the bench user on sjti's server; (access token, user id)."""
    httpx.post(f"{url}/users", json={"username": "bench", "password": _PASSWORD}, timeout=30)
    token = httpx.post(
        f"{url}/token",
        data={"grant_type": "password", "username": "bench", "password": _PASSWORD},
        timeout=30,
    ).json()["access_token"]
    me = httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return token, me.json()["id"]


def _peer_token(url: str) -> str:
    """Register the bench user on the peer; its access token."""
    email = "bench@example.com"
    httpx.post(f"{url}/auth/register", json={"email": email, "password": _PASSWORD}, timeout=30)
    answer = httpx.post(
        f"{url}/auth/jwt/login", data={"username": email, "password": _PASSWORD}, timeout=30
    )
    token: str = answer.json()["access_token"]
    return token


@contextmanager
def _servers(shape: str, tmp: Path, postgres_url: str) -> Iterator[list[_Server]]:
    """sjti's server, the peer and (SQLite) the no-auth twin, seeded, until the block ends."""
    from ._http_peer import create_tables

    workers = _WORKERS[shape]
    python = sys.executable
    with ExitStack() as stack:
        env = {
            **os.environ,
            "SJTI_KEY_FILE": str(tmp / "keys.json"),
            "SJTI_WORKERS": str(workers),
            "SJTI_HOST": "127.0.0.1",
            "SJTI_LOGIN_MAX_FAILURES": "1000",
            "SJTI_LOGIN_MAX_FAILURES_PER_IP": "100000",
            "SJTI_REGISTRATIONS_PER_IP": "100000",
        }
        if shape == "sqlite":
            sjti_db, peer_db = None, None
            env["SJTI_DATABASE_URL"] = f"sqlite:///{tmp / 'sjti.db'}"
            peer_url = f"sqlite:///{tmp / 'peer.db'}"
        else:
            prefix = f"sjti_bench_http_{os.getpid()}"
            sjti_db, peer_db = f"{prefix}_sjti", f"{prefix}_peer"
            env["SJTI_DATABASE_URL"] = stack.enter_context(postgres_database(postgres_url, sjti_db))
            peer_url = stack.enter_context(postgres_database(postgres_url, peer_db))
            env["SJTI_REDIS_URL"] = stack.enter_context(private_redis())
        create_tables(peer_url)
        peer_env = {
            **env,
            "SJTI_BENCH_PEER_DATABASE_URL": peer_url,
            "SJTI_BENCH_PEER_SECRET": _SECRET,
        }

        def start(name: str, argv: list[str], server_env: dict[str, str]) -> ServerProcess:
            process = ServerProcess(argv, server_env, tmp / f"{shape}-{name}.log")
            stack.callback(process.stop)
            return process

        mine = start(SJTI, [python, "-m", "sjti.cli", "serve"], env)
        token, user_id = _sjti_token(mine.url)
        peer = start(PEER, [python, "-m", "sjti.bench._http_app", "--peer"], peer_env)
        servers = [
            _Server(SJTI, mine, token, sjti_db),
            _Server(PEER, peer, _peer_token(peer.url), peer_db),
        ]
        if shape == "sqlite":  # the twin shares sjti's database: no connection count to spoil
            twin_env = {**env, "SJTI_BENCH_USER_ID": user_id}
            twin = start(NO_AUTH, [python, "-m", "sjti.bench._http_app", "--no-auth"], twin_env)
            servers.append(_Server(NO_AUTH, twin, ""))
        yield servers


def _plan(servers: list[_Server]) -> list[tuple[_Server, str]]:
    plan = []
    for server in servers:
        plan.append((server, "/users/me" if server.name == PEER else "/me"))
    plan += [(s, "/healthz") for s in servers if s.name != NO_AUTH]
    return plan


def _run_shape(
    shape: str, generator: Generator, seconds: float, connections: int, postgres_url: str
) -> ShapeResult:
    with (
        tempfile.TemporaryDirectory(prefix="sjti-bench-http-") as tmp,
        _servers(shape, Path(tmp), postgres_url) as servers,
    ):
        plan = _plan(servers)
        # the baseline counts what start-up opened: the pool's first connections come in
        # the warm-up, and belong to the run
        opened_before = {
            s.name: sessions_opened(postgres_url, s.database) for s in servers if s.database
        }
        loads: dict[tuple[str, str], list[tuple[Load, float]]] = {}
        load_seconds: dict[str, float] = {}

        def measure(server: _Server, route: str, span: float) -> tuple[Load, float]:
            token = server.token if route != "/healthz" else None
            cpu = server.process.cpu_seconds()
            load = generator(server.process.url + route, token, span, connections)
            load_seconds[server.name] = load_seconds.get(server.name, 0.0) + load.seconds
            return load, server.process.cpu_seconds() - cpu

        warm = min(1.0, seconds / 2)
        for server, route in plan:
            measure(server, route, warm)
        for server, route in [*plan, *reversed(plan)]:  # alternated: drift cancels out
            loads.setdefault((server.name, route), []).append(measure(server, route, seconds / 2))
        time.sleep(1.5)  # backends report their session to the statistics within a second
        connections_per_20s = {
            s.name: (sessions_opened(postgres_url, s.database) - opened_before[s.name])
            * 20.0
            / max(load_seconds[s.name], 1e-9)
            for s in servers
            if s.database
        }
        bus_drops = (
            {s.name: s.process.bus_drops() for s in servers if s.name == SJTI}
            if shape == "postgres"
            else {}
        )
    rows = tuple(_row(name, route, runs) for (name, route), runs in loads.items())
    return ShapeResult(shape, _WORKERS[shape], rows, connections_per_20s, bus_drops)


def _row(server: str, route: str, runs: Sequence[tuple[Load, float]]) -> Row:
    requests = sum(load.requests for load, _ in runs)
    seconds = sum(load.seconds for load, _ in runs)
    cpu = sum(spent for _, spent in runs)
    return Row(
        server=server,
        route=route,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=sum(load.p50_ms for load, _ in runs) / len(runs),
        p99_ms=max(load.p99_ms for load, _ in runs),
        errors=sum(load.errors for load, _ in runs),
        timeouts=sum(load.timeouts for load, _ in runs),
        requests=requests,
        cpu_ms_per_request=1e3 * cpu / requests if requests else 0.0,
    )


def run(
    *,
    seconds: float = 20.0,
    connections: int = 16,
    generator: str = "auto",
    shapes: Sequence[str] = SHAPES,
    postgres_url: str = DEFAULT_POSTGRES_URL,
) -> HttpResult:
    """Every shape, every server, alternated. ``seconds``: load per server and route
    (two halves); ``generator``: auto, wrk or httpx."""
    installed = wrk_installed()
    if generator == "wrk" and not installed:
        raise RuntimeError("wrk is not installed (use --generator httpx)")
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        raise ValueError(f"unknown shape(s): {', '.join(sorted(unknown))}")
    use_wrk = generator == "wrk" or (generator == "auto" and installed)
    load: Generator = wrk_load if use_wrk else httpx_load
    results = tuple(_run_shape(s, load, seconds, connections, postgres_url) for s in shapes)
    return HttpResult(
        generator="wrk" if use_wrk else "httpx",
        seconds=seconds,
        connections=connections,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        shapes=results,
    )


def _json(result: HttpResult) -> str:
    return json.dumps(
        {
            **asdict(result),
            "clean": result.clean,
            "targets": [{**asdict(t), "passed": t.passed} for t in result.targets()],
        },
        indent=2,
    )


def _text(result: HttpResult) -> str:
    lines = []
    for shape in result.shapes:
        lines.append(f"{shape.shape} x {shape.workers} worker(s)")
        lines.append(
            f"  {'server':<15} {'route':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'errors':>6} {'timeouts':>8} {'CPU ms/req':>10}"
        )
        for r in shape.rows:
            lines.append(
                f"  {r.server:<15} {r.route:<10} {r.rps:8.1f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
                f"{r.errors:6d} {r.timeouts:8d} {r.cpu_ms_per_request:10.2f}"
            )
        no_auth, mine = shape.row(NO_AUTH, "/me"), shape.row(SJTI, "/me")
        if no_auth and mine and no_auth.rps:
            lines.append(
                f"  auth costs {100 * (1 - mine.rps / no_auth.rps):.1f}% of /me throughput"
            )
    lines.append("targets")
    for t in result.targets():
        verdict = {True: "ok", False: "MISSED", None: "n/a"}[t.passed]
        value = "-" if t.value is None else f"{t.value:.2f}{t.unit}"
        lines.append(f"  {t.name:<52} {value:>10} {t.op} {t.target:g}{t.unit}  {verdict}")
    lines.append(
        f"{'all requests answered 2xx' if result.clean else 'ERRORS OR TIMEOUTS SEEN'}; "
        f"{result.generator}, {result.connections} connections, {result.seconds:g} s per "
        f"server and route (alternated halves); {result.machine}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sjti.bench.http", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="load per server and route")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--shape", choices=SHAPES, action="append", help="default: both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("SJTI_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    parser.add_argument("--quick", action="store_true", help="1 s per server and route")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(
        seconds=1.0 if args.quick else args.seconds,
        connections=args.connections,
        generator=args.generator,
        shapes=args.shape or SHAPES,
        postgres_url=args.postgres_url,
    )
    print(_json(result) if args.json else _text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
