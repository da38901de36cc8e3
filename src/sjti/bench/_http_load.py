"""Load generators for the HTTP bench: ``wrk`` when installed, else a small httpx client.

Both report the same :class:`Load`: requests, rate, p50/p99 latency, non-2xx answers and
timeouts (socket errors count as errors). Neither raises on a failed request: a bench
reports what it saw, and its correctness checks say whether that is zero.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass

import httpx

__all__ = ["Load", "httpx_load", "parse_wrk", "wrk_installed", "wrk_load"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True, slots=True)
class Load:
    """What one load run saw."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors other than timeouts
    timeouts: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_installed() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> Load:
    """Read ``wrk --latency`` output; ValueError when it is not that."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if done is None or p50 is None or p99 is None:
        raise ValueError("unexpected wrk output")
    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    timeouts = 0
    if socket is not None:
        errors += sum(int(socket.group(i)) for i in (1, 2, 3))
        timeouts = int(socket.group(4))
    return Load(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1e3,
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        errors=errors,
        timeouts=timeouts,
    )


def wrk_load(url: str, token: str | None, seconds: float, connections: int) -> Load:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (use --generator httpx)")
    args = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    args += ["--timeout", "5s"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)  # noqa: S603
    return parse_wrk(done.stdout)


async def _httpx(url: str, token: str | None, seconds: float, connections: int) -> Load:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors = timeouts = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, timeouts
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                response = await client.get(url, headers=headers)
            except httpx.TimeoutException:
                timeouts += 1
                continue
            except httpx.TransportError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - began) * 1e3)
            if not 200 <= response.status_code < 300:
                errors += 1

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=5, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Load(len(latencies), elapsed, cuts[49], cuts[98], errors, timeouts)


def httpx_load(url: str, token: str | None, seconds: float, connections: int) -> Load:
    return asyncio.run(_httpx(url, token, seconds, connections))
