"""Revocation across nodes: three OS processes, each with its own cache, sharing one
PostgreSQL and one Redis. Revoke on one node, time until every other node refuses.

Used by ``sjti bench`` (the ``sjti.revoke_propagation_p99_ms`` row, when the services
answer) and by the tests, which add a fault: Redis killed and restarted mid-run.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy import create_engine

from .._core.wrapping import Kek, KekRing
from ..stores.sql import upgrade

__all__ = ["Node", "PropagationResult", "cluster", "measure_propagation"]


class Node:
    """A node process and its line protocol (see :mod:`sjti.bench._node`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sjti.bench._node"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            bufsize=1,
        )

    def ask(self, command: str) -> str:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover - Popen always sets them
            raise RuntimeError("node pipes closed")
        stdin.write(command + "\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"node exited with {self._proc.poll()}")
        return answer.rstrip("\n")

    def close(self) -> None:
        if self._proc.poll() is None:
            with suppress(RuntimeError, OSError):
                self.ask("quit")
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()


@contextmanager
def cluster(database_url: str, redis_url: str, *, nodes: int = 3) -> Iterator[list[Node]]:
    """Start ``nodes`` node processes sharing the database and Redis; stop them after."""
    upgrade_engine = create_engine(database_url)
    try:
        upgrade(upgrade_engine)
    finally:
        upgrade_engine.dispose()
    env = {
        **os.environ,
        "SJTI_NODE_DATABASE_URL": database_url,
        "SJTI_NODE_REDIS_URL": redis_url,
        "SJTI_NODE_KEK": KekRing([Kek.generate("bench")]).to_config(),
        "SJTI_NODE_APP_SECRET": secrets.token_hex(32),
    }
    started = [Node(env) for _ in range(nodes)]
    try:
        for node in started:  # each answers once its bus is up
            node.ask("stats")
        yield started
    finally:
        for node in started:
            node.close()


@dataclass(frozen=True, slots=True)
class PropagationResult:
    latencies_ms: tuple[float, ...]  # per revocation: until the last other node refused
    accepted_after_window: int  # a node accepted a token it had refused before (must be 0)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def measure_propagation(
    nodes: Sequence[Node],
    *,
    revocations: int = 200,
    deadline_s: float = 5.0,
    between: Callable[[int], None] | None = None,
) -> PropagationResult:
    """Revoke ``revocations`` users on node 0; time until nodes 1.. refuse the old token.

    Every other node first verifies the token (so it is cached there). ``between(i)`` runs
    before revocation ``i`` (the tests kill and restart Redis there).
    """
    first, others = nodes[0], nodes[1:]
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    relapses = 0
    run = secrets.token_hex(3)
    for i in range(revocations):
        if between is not None:
            between(i)
        user = f"user-{run}-{i}"
        token = first.ask(f"issue {user}")
        for node in others:
            node.ask(f"check {token}")  # warm the cache (or read through if untrusted)
        answer = first.ask(f"revoke {user}")
        outcomes[answer] = outcomes.get(answer, 0) + 1
        returned = time.perf_counter()
        pending = list(others)
        last = returned
        while pending and time.perf_counter() - returned < deadline_s:
            for node in list(pending):
                if node.ask(f"check {token}") != "accepted":
                    pending.remove(node)
                    last = time.perf_counter()
        latencies.append((last - returned) * 1000 if not pending else deadline_s * 1000)
        # Once refused, always refused: check each node again.
        relapses += sum(node.ask(f"check {token}") == "accepted" for node in others)
    return PropagationResult(tuple(latencies), relapses, outcomes)
