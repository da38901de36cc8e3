"""What auth costs over HTTP: ``/me`` throughput with and without the token checks.

Two single-worker servers of the reference app on SQLite share one database and key file;
one runs ``/me`` as shipped (boundary + user layer), the other with the bearer dependency
replaced by a plain load of the same user row. A load generator (``wrk`` when installed,
else a small httpx client) drives each in turn. Run it: ``python -m sjti.bench.http``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

__all__ = ["HttpResult", "main", "run"]

_PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench user


@dataclass(frozen=True, slots=True)
class HttpResult:
    me_auth_rps: float
    me_no_auth_rps: float
    generator: str
    seconds: float
    connections: int

    @property
    def auth_cost_pct(self) -> float:
        """Share of throughput the token checks cost (negative: within noise)."""
        return 100.0 * (1.0 - self.me_auth_rps / self.me_no_auth_rps)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(env: dict[str, str], *flags: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - our interpreter and module
        [sys.executable, "-m", "sjti.bench._http_app", *flags],
        env={**env, "SJTI_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("bench server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def _wrk(url: str, token: str | None, seconds: float, connections: int) -> float:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (use --generator httpx)")
    args = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(  # noqa: S603 - fixed argv
        [*args, f"{url}/me"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise RuntimeError("wrk saw errors")
    return float(match.group(1))


async def _httpx_load(url: str, token: str | None, seconds: float, connections: int) -> float:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.get(f"{url}/me", headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"/me answered {response.status_code}")
            done += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return done / (time.perf_counter() - started)


def run(*, seconds: float = 10.0, connections: int = 16, generator: str = "auto") -> HttpResult:
    """Start both servers, measure each, stop them. ``generator``: auto, wrk or httpx."""
    installed = shutil.which("wrk") is not None
    if generator == "wrk" and not installed:
        raise RuntimeError("wrk is not installed (use --generator httpx)")
    use_wrk = generator == "wrk" or (generator == "auto" and installed)
    with tempfile.TemporaryDirectory(prefix="sjti-bench-http-") as tmp:
        env = {
            **os.environ,
            "SJTI_DATABASE_URL": f"sqlite:///{Path(tmp) / 'sjti.db'}",
            "SJTI_KEY_FILE": str(Path(tmp) / "keys.json"),
            "SJTI_LOGIN_MAX_FAILURES": "1000",
        }
        with _server(env) as auth_url:
            httpx.post(f"{auth_url}/users", json={"username": "bench", "password": _PASSWORD})
            token = httpx.post(
                f"{auth_url}/token",
                data={"grant_type": "password", "username": "bench", "password": _PASSWORD},
            ).json()["access_token"]
            user_id = httpx.get(
                f"{auth_url}/me", headers={"Authorization": f"Bearer {token}"}
            ).json()["id"]
            with _server({**env, "SJTI_BENCH_USER_ID": user_id}, "--no-auth") as plain_url:

                def measure(url: str, bearer: str | None, span: float) -> float:
                    if use_wrk:
                        return _wrk(url, bearer, span, connections)
                    return asyncio.run(_httpx_load(url, bearer, span, connections))

                targets = ((plain_url, None), (auth_url, token))
                for warm_url, warm_bearer in targets:
                    measure(warm_url, warm_bearer, 1)  # warm up
                # Alternate (plain, auth, auth, plain) so drift and order effects cancel out.
                half = seconds / 2
                order = [0, 1, 1, 0]
                totals = [0.0, 0.0]
                for index in order:
                    url, bearer = targets[index]
                    totals[index] += measure(url, bearer, half) / 2
    return HttpResult(
        me_auth_rps=totals[1],
        me_no_auth_rps=totals[0],
        generator="wrk" if use_wrk else "httpx",
        seconds=seconds,
        connections=connections,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sjti.bench.http", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per variant")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(seconds=args.seconds, connections=args.connections, generator=args.generator)
    if args.json:
        print(json.dumps({**asdict(result), "auth_cost_pct": result.auth_cost_pct}))
    else:
        print(f"/me without auth: {result.me_no_auth_rps:8.1f} req/s")
        print(f"/me with auth:    {result.me_auth_rps:8.1f} req/s  (both layers)")
        print(
            f"auth costs {result.auth_cost_pct:.1f}% of throughput (target <= 15%); "
            f"{result.generator}, {result.connections} connections, {result.seconds:g} s each"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
