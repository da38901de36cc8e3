"""Faults on a schedule, and how long each node takes to be trusted again.

Three kinds: ``redis`` (``kill -9``, same port again after an outage), ``postgres``
(``pg_ctl stop -m immediate``, start again), ``server`` (one node ``kill -9``, same port
again). After each, every node's ``GET /readyz`` is polled until all answer ready with a
trusted cache: the time from the fault to that moment is the *time to recover trust*.
Between faults the nodes are watched: a node that dies when nobody killed it is an
*unexpected exit*; it is counted and started again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._soak_infra import PrivatePostgres, PrivateRedis, ServerNode
from ._soak_record import Recorder

__all__ = ["KINDS", "Chaos", "FaultResult", "FaultSpec", "default_schedule", "parse_schedule"]

KINDS = ("redis", "postgres", "server")
RECOVERY_LIMIT = 30.0  # a fault not recovered from by then counts as a failure


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Inject ``kind`` no earlier than ``at`` seconds after the load started."""

    kind: str
    at: float


def parse_schedule(text: str) -> list[FaultSpec]:
    """``"redis@5,postgres@12,server@20"`` -> specs (``""``: no faults)."""
    specs: list[FaultSpec] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, at = item.partition("@")
        if kind not in KINDS or not at:
            raise ValueError(f"fault {item!r}: use KIND@SECONDS with KIND in {', '.join(KINDS)}")
        specs.append(FaultSpec(kind, float(at)))
    return sorted(specs, key=lambda spec: spec.at)


def default_schedule(duration: float) -> list[FaultSpec]:
    """Every kind at least once, in turn, spread so the last leaves a calm tail."""
    rounds = max(1, int((duration - 10) // 24))
    start, end = min(5.0, duration / 10), max(duration * 0.6, duration - 15)
    step = (end - start) / max(1, 3 * rounds - 1)
    return [FaultSpec(KINDS[i % 3], round(start + i * step, 1)) for i in range(3 * rounds)]


@dataclass(slots=True)
class FaultResult:
    """One fault: when (s after load start), how long the thing was down, when trusted."""

    kind: str
    node: int | None
    at: float
    down_s: float
    recovered_s: float | None  # fault -> every node ready; None: not within the limit
    not_ready_states: list[str] = field(default_factory=list)


class Chaos:
    """Runs the schedule in a thread; :attr:`results` and :attr:`unexpected_exits` after."""

    def __init__(
        self,
        rec: Recorder,
        postgres: PrivatePostgres,
        redis: PrivateRedis,
        nodes: list[ServerNode],
        schedule: list[FaultSpec],
        *,
        outage: float = 1.5,
    ) -> None:
        self._rec = rec
        self._postgres = postgres
        self._redis = redis
        self._nodes = nodes
        self._schedule = schedule
        self._outage = outage
        self.results: list[FaultResult] = []
        self.unexpected_exits: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(1.0))
        self._server_faults = 0

    def start(self, load_start: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(load_start,), daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the schedule (and the recovery it is in) to end, then stop watching."""
        if self._thread is not None:
            deadline = time.monotonic() + timeout
            while self._pending() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stopping.set()
            self._thread.join(max(0.0, deadline - time.monotonic()) + 5)
        self._client.close()

    def _pending(self) -> bool:
        return len(self.results) < len(self._schedule) and not self.stopping.is_set()

    def _run(self, load_start: float) -> None:
        for spec in self._schedule:
            while self._rec.now() < load_start + spec.at:
                if self.stopping.wait(0.1):
                    return
                self._watch()
            self.results.append(self._inject(spec, load_start))
        while not self.stopping.wait(0.1):
            self._watch()

    def _watch(self) -> None:
        for node in self._nodes:
            if not node.alive():
                self.unexpected_exits.append({"node": node.index, "at": self._rec.now()})
                node.start()

    def _inject(self, spec: FaultSpec, load_start: float) -> FaultResult:
        struck: int | None = None
        began = self._rec.now()
        if spec.kind == "redis":
            self._redis.kill()
            time.sleep(self._outage)
            self._redis.start()
        elif spec.kind == "postgres":
            self._postgres.stop_immediate()
            time.sleep(self._outage)
            self._postgres.start()
        else:
            node = self._nodes[(1 + self._server_faults) % len(self._nodes)]
            self._server_faults += 1
            struck = node.index
            node.kill()
            time.sleep(min(self._outage, 1.0))
            node.start()
        back = self._rec.now()
        states: set[str] = set()
        recovered = self._wait_ready(states)
        return FaultResult(
            kind=spec.kind,
            node=struck,
            at=round(began - load_start, 3),
            down_s=round(back - began, 3),
            recovered_s=None if recovered is None else round(recovered - began, 3),
            not_ready_states=sorted(states),
        )

    def _wait_ready(self, states: set[str]) -> float | None:
        """Poll every node's ``/readyz`` until all are ready; when that was (or None)."""
        deadline = self._rec.now() + RECOVERY_LIMIT
        while self._rec.now() < deadline:
            ready = [self._ready(node, states) for node in self._nodes]
            if all(ready):
                return self._rec.now()
            time.sleep(0.05)
        return None

    def _ready(self, node: ServerNode, states: set[str]) -> bool:
        try:
            response = self._client.get(f"{node.url}/readyz")
            body = response.json()
        except (httpx.HTTPError, ValueError):
            states.add("no answer")
            return False
        # Ready is not enough: a node with a lost bus stays ready (it reads through); trust
        # recovered means its cache is proven current again.
        if (
            response.status_code == 200
            and body.get("ready") is True
            and body.get("cache", "trusted") == "trusted"
        ):
            return True
        detail = " ".join(f"{k}={v}" for k, v in sorted(body.items()) if k != "ready")
        states.add(f"{response.status_code} {detail}".strip())
        return False
