"""The table (scenarios x strategies) and the Markdown page with a fair reading."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._cells import (
    BACKENDS,
    CANNOT_FORGE,
    FORGES,
    PEER_BACKEND,
    PEERS,
    SCENARIOS,
    STRATEGIES,
    Cell,
)
from ._run import Comparison

__all__ = ["render_markdown", "render_table"]

Column = tuple[str, str]  # (strategy, backend)


def _columns(cells: Sequence[Cell]) -> list[Column]:
    """Backends in order, strategies in order within each, then the peers."""
    present = {(cell.strategy, cell.backend) for cell in cells}
    backends = [*BACKENDS, PEER_BACKEND]
    backends += sorted({backend for _, backend in present} - set(backends))
    names = [*STRATEGIES, *PEERS]
    names += sorted({name for name, _ in present} - set(names))
    return [(name, backend) for backend in backends for name in names if (name, backend) in present]


def _labeller(cells: Sequence[Cell]) -> dict[Column, str]:
    """``sjti`` when one backend ran, ``sjti (pg)`` when several did; peers plain."""
    columns = _columns(cells)
    several = len({backend for _, backend in columns if backend != PEER_BACKEND}) > 1
    return {
        (name, backend): f"{name} ({backend})" if several and backend != PEER_BACKEND else name
        for name, backend in columns
    }


def render_table(cells: Sequence[Cell]) -> str:
    """A Markdown table: one row per scenario, one column per strategy and backend ("-":
    not run)."""
    labels = _labeller(cells)
    verdicts = {(cell.strategy, cell.backend, cell.scenario): cell.verdict for cell in cells}
    lines = [
        "| scenario | " + " | ".join(labels.values()) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for scenario, label in SCENARIOS.items():
        if not any(cell.scenario == scenario for cell in cells):
            continue
        row = [verdicts.get((name, backend, scenario), "-") for name, backend in labels]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _who(cells: Sequence[Cell], scenario: str, verdict: str) -> str:
    labels = _labeller(cells)
    names = [
        labels[c.strategy, c.backend]
        for c in cells
        if c.scenario == scenario and c.verdict == verdict
    ]
    return ", ".join(f"`{name}`" for name in names) or "none"


def _value(cells: Sequence[Cell], strategy: str, scenario: str) -> float | None:
    """The first backend's value (SQLite when it ran)."""
    for cell in cells:
        if (cell.strategy, cell.scenario) == (strategy, scenario) and cell.value is not None:
            return float(cell.value)
    return None


def _reading(result: Comparison) -> list[str]:
    """Sentences computed from the cells, then what the numbers mean."""
    cells = result.cells
    size = result.size
    lines = [
        f"* **Log out everywhere** works for {_who(cells, 'logout_everywhere', 'yes')}; "
        f"not for {_who(cells, 'logout_everywhere', 'no')}. **One token** can be revoked "
        f"by {_who(cells, 'revoke_one', 'yes')}: `sjti` and `epoch` revoke the whole user "
        "(a per-session key would be needed, at O(sessions) state).",
        _device_reading(cells),
    ]
    for scenario in ("leak_app_key", "leak_db_copy", "leak_db_copy_app_key"):
        lines.append(
            f"* **{SCENARIOS[scenario]}**: forges with {_who(cells, scenario, FORGES)}; "
            f"cannot forge with {_who(cells, scenario, CANNOT_FORGE)}."
        )
    lines.append(
        "* **DB copy + app key + KEK** (everything the app process holds): forges with "
        f"{_who(cells, 'leak_db_copy_app_secrets', FORGES)}; cannot forge with "
        f"{_who(cells, 'leak_db_copy_app_secrets', CANNOT_FORGE)}. This is where `session` "
        "wins: it stores only SHA-256 of each session secret, so even the server key plus "
        "a read-only dump authenticates nobody, while `sjti`'s wrapping only holds as long "
        "as the KEK stays out of the attacker's hands."
    )
    labels = _labeller(cells)
    shown = ", ".join(
        f"`{labels[c.strategy, c.backend]}` {int(c.value):,} B"
        for c in cells
        if c.scenario == "state_bytes" and c.value is not None
    )
    lines.append(
        f"* **State** after {size.users:,} users x {size.tokens} tokens: {shown}. `sjti` "
        "is not stateless: it keeps O(users) state (one wrapped key per user who ever got a "
        "token), independent of how many tokens are out. `epoch` keeps O(revoked users). "
        "`denylist` needs O(live tokens) just to be able to log a user out, plus O(revoked "
        "tokens until exp); `session` keeps O(live sessions)."
    )
    lines.append(
        "* **Round trips**: on its own each stateful design reads the database once per "
        "request. When the app loads the user's row anyway, `sjti` and `epoch` ride on it "
        "(0 extra, counted), `denylist` and `session` still need their own read (1 extra). "
        "The boundary layer of every design reads nothing."
    )
    closed = sorted(
        {c.strategy for c in cells if c.scenario == "db_unavailable" and "closed" in c.verdict},
        key=lambda name: (*STRATEGIES, name).index(name),
    )
    lines.append(
        "* **Database down**: the boundary still drops forged and expired tokens; the user "
        f"layer fails closed for {', '.join(f'`{n}`' for n in closed) or 'none'} (on every "
        "backend run). Only `epoch` and `plain` can still issue tokens."
    )
    ours = _value(cells, "sjti", "boundary_us")
    peers = [(n, _value(cells, n, "boundary_us")) for n in PEERS]
    peer_text = ", ".join(f"{n} {v:.1f} us" for n, v in peers if v is not None)
    if ours is not None and peer_text:
        lines.append(
            f"* **Cost**: the sjti boundary check takes {ours:.1f} us against a plain decode "
            f"by {peer_text} on the same token; the user layer's MAC adds microseconds, the "
            "database read (if not already made) costs far more. Full-verify numbers include "
            "SQLAlchemy's per-call connection checkout (and, on PostgreSQL, the network "
            "round trips over localhost)."
        )
    lines.append(_latency_reading(cells))
    lines.append(
        "* **Where each loses**: `sjti` cannot revoke one token (one device, yes) and falls "
        "to a full app "
        "compromise (app key + KEK + DB); `epoch` binds nothing, so the signing key alone "
        "mints for anyone; `denylist` grows with tokens and also falls to the signing key; "
        "`session` pays a read on every request and O(sessions) state; `plain` revokes "
        "nothing."
    )
    return lines


def _device_reading(cells: Sequence[Cell]) -> str:
    """Who signs one device out alone, who signs out every device, who cannot."""
    device = [c for c in cells if c.scenario == "revoke_device"]
    labels = _labeller(cells)

    def who(test: Callable[[str], bool]) -> str:
        names = [labels[c.strategy, c.backend] for c in device if test(c.verdict)]
        return ", ".join(f"`{name}`" for name in names) or "none"

    return (
        "* **One device** (a user signed in on devices A and B, another user elsewhere; "
        "sign A out, then ask the verifier): A refused and B kept by "
        f"{who(lambda v: v.startswith('yes'))}; every device of the user signed out by "
        f"{who(lambda v: v.startswith('all devices'))}; not possible for "
        f"{who(lambda v: v == 'no')}. The cost is counted on a token of B: round trips per "
        "verification (and beyond the app's own user-row read), rows a sign-in and an "
        "issued token add. `sjti` keeps the device list on the user's key row (the record "
        "grows by 16 bytes a device, no row and no query more: O(active devices)); "
        "`session` holds a row per device and reads it on every request; `denylist` can "
        "only deny every jti of the device, so it must record each token it issues with its "
        "device (a row per token). `epoch` keeps one counter per user: moving it signs "
        "every device out. A per-device epoch would be a (user, device) row read on every "
        "request, that is a session table by another name, so the comparison keeps the "
        "design as its advocates state it."
    )


def _latency_reading(cells: Sequence[Cell]) -> str:
    labels = _labeller(cells)
    shown = "; ".join(
        f"`{labels[c.strategy, c.backend]}` p99 {float(c.value):.1f} ms"
        for c in cells
        if c.scenario == "revocation_latency" and c.value is not None
    )
    clustered = any(c.scenario == "revocation_latency" and "Redis bus" in c.verdict for c in cells)
    sjti = (
        "`sjti` on PostgreSQL runs as deployed: three node processes, each caching user keys, "
        "invalidated over the Redis bus, so its latency is the bus delivery, while every "
        "other node verifies from its cache without a read. "
        if clustered
        else ""
    )
    return (
        f"* **Revocation latency across nodes** (revoke on one node, time from the commit "
        f"until another node refuses the old token): {shown or 'not measured'}. {sjti}"
        "`epoch`, `denylist`, `session` (and `sjti` without a cache) keep no per-node "
        "state: node B sees the revocation on its very next request, so the latency is "
        "about one store read, because they pay a store read on every request. `plain` "
        "cannot revoke at all."
    )


_STORES = {
    "sqlite": "SQLite files",
    "pg": "scratch PostgreSQL databases",
    "redis": "Redis (the deny-list; the app's users table in SQL)",
}
_SIZES = {
    "sqlite": "SQLite's `dbstat` (tables and indexes)",
    "pg": "PostgreSQL's `pg_total_relation_size` (heap, indexes, TOAST)",
    "redis": "Redis `MEMORY USAGE` of every key, summed",
}


def render_markdown(result: Comparison, command: str) -> str:
    """The page written to ``docs/comparison.md``."""
    machine = "\n".join(f"- {key}: {value}" for key, value in result.machine.items())
    stores = ", ".join(_STORES[b] for b in result.backends if b in _STORES) or "no store"
    sizes = "; ".join(_SIZES[b] for b in result.backends if b in _SIZES)
    missing = [name for name in ("pg", "redis") if name not in result.backends]
    not_here = "PostgreSQL and Redis stores (run without `--sqlite-only`), and " if missing else ""
    return "\n".join(
        [
            "# Revocation designs compared",
            "",
            "Generated by `sjti compare`; do not edit by hand. Regenerate with:",
            "",
            "```sh",
            command,
            "```",
            "",
            f"Run: {result.size.users:,} users x {result.size.tokens} tokens per strategy "
            f"and backend, on {stores}, {result.seconds} s in total. Machine:",
            "",
            machine,
            "",
            "Every security cell is the outcome of an executed attack: the attacker builds "
            "tokens from exactly what it holds (a read-only copy of the store: the SQLite "
            "file, every PostgreSQL table read with `SELECT *`, every Redis key's value; the "
            "application signing key or session server key; the KEK) and the real verifier "
            "judges them. Round trips are counted with SQLAlchemy `before_cursor_execute` "
            "events, and for Redis by a client that counts the commands it sends (a "
            f"pipeline counts once); sizes are measured with {sizes} (the application's own "
            "users table excluded).",
            "",
            render_table(result.cells),
            "## Reading",
            "",
            *_reading(result),
            "",
            *([f"Not measured here: {not_here.removesuffix(', and ')}."] if missing else []),
            "",
        ]
    )
