"""One result of the comparison: a strategy, a scenario, a verdict and maybe a number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BACKENDS",
    "CANNOT_FORGE",
    "FORGES",
    "PEERS",
    "PEER_BACKEND",
    "SCENARIOS",
    "STRATEGIES",
    "Cell",
    "CompareError",
    "is_alarm",
]

FORGES: Final = "forges"
CANNOT_FORGE: Final = "cannot forge"
BROKEN: Final = "BROKEN"
UNCHECKED: Final = "ACCEPTS UNCHECKED"

STRATEGIES: Final = ("sjti", "epoch", "denylist", "session", "plain")
BACKENDS: Final = ("sqlite", "pg", "redis")
PEER_BACKEND: Final = "none"
PEERS: Final = ("pyjwt", "joserfc")

# id -> label, in table order.
SCENARIOS: Final[dict[str, str]] = {
    "logout_everywhere": "log out everywhere",
    "revoke_one": "revoke one token",
    "revoke_device": "revoke one device",
    "revoke_cohort": "revoke a 10% cohort (ms)",
    "leak_db_copy": "leak: read-only DB copy",
    "leak_app_key": "leak: app signing key",
    "leak_db_copy_app_key": "leak: DB copy + app key",
    "leak_db_copy_app_secrets": "leak: DB copy + app key + KEK",
    "db_unavailable": "database unavailable",
    "state_bytes": "state after U users x T tokens",
    "round_trips": "DB round trips / verify",
    "round_trips_user_row": "extra round trips, user row loaded",
    "boundary_us": "boundary / decode (us)",
    "verify_us": "full verify (us)",
    "revocation_latency": "revocation latency across nodes",
}


class CompareError(Exception):
    """A scenario could not run as designed (a precheck failed); no verdict is given."""


@dataclass(frozen=True, slots=True)
class Cell:
    strategy: str
    scenario: str
    verdict: str
    value: float | int | None = None
    backend: str = "sqlite"  # where the state lives: sqlite, pg, redis; "none" for peers

    def to_json(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "scenario": self.scenario,
            "verdict": self.verdict,
            "value": self.value,
            "backend": self.backend,
        }


def is_alarm(cell: Cell) -> bool:
    """A verdict that means the design (or its adapter) misbehaved."""
    return cell.verdict.startswith(BROKEN) or UNCHECKED in cell.verdict
