"""The table (scenarios x strategies) and the Markdown page with a fair reading."""

from __future__ import annotations

from collections.abc import Sequence

from ._cells import CANNOT_FORGE, FORGES, PEERS, SCENARIOS, STRATEGIES, Cell
from ._run import Comparison

__all__ = ["render_markdown", "render_table"]


def _columns(cells: Sequence[Cell]) -> list[str]:
    present = {cell.strategy for cell in cells}
    known = [name for name in (*STRATEGIES, *PEERS) if name in present]
    return known + sorted(present - set(known))


def render_table(cells: Sequence[Cell]) -> str:
    """A Markdown table: one row per scenario, one column per strategy ("-": not run)."""
    columns = _columns(cells)
    verdicts = {(cell.strategy, cell.scenario): cell.verdict for cell in cells}
    lines = [
        "| scenario | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for scenario, label in SCENARIOS.items():
        if not any(cell.scenario == scenario for cell in cells):
            continue
        row = [verdicts.get((name, scenario), "-") for name in columns]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _who(cells: Sequence[Cell], scenario: str, verdict: str) -> str:
    names = [c.strategy for c in cells if c.scenario == scenario and c.verdict == verdict]
    return ", ".join(f"`{name}`" for name in names) or "none"


def _value(cells: Sequence[Cell], strategy: str, scenario: str) -> float | None:
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
    state = {name: _value(cells, name, "state_bytes") for name in STRATEGIES}
    shown = ", ".join(
        f"`{name}` {int(value):,} B" for name, value in state.items() if value is not None
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
    closed = [c.strategy for c in cells if c.scenario == "db_unavailable" and "closed" in c.verdict]
    lines.append(
        "* **Database down**: the boundary still drops forged and expired tokens; the user "
        f"layer fails closed for {', '.join(f'`{n}`' for n in closed) or 'none'}. Only "
        "`epoch` and `plain` can still issue tokens."
    )
    ours = _value(cells, "sjti", "boundary_us")
    peers = [(n, _value(cells, n, "boundary_us")) for n in PEERS]
    peer_text = ", ".join(f"{n} {v:.1f} us" for n, v in peers if v is not None)
    if ours is not None and peer_text:
        lines.append(
            f"* **Cost**: the sjti boundary check takes {ours:.1f} us against a plain decode "
            f"by {peer_text} on the same token; the user layer's MAC adds microseconds, the "
            "database read (if not already made) costs far more. Full-verify numbers include "
            "SQLAlchemy's per-call connection checkout on SQLite."
        )
    lines.append(
        "* **Where each loses**: `sjti` cannot revoke one token and falls to a full app "
        "compromise (app key + KEK + DB); `epoch` binds nothing, so the signing key alone "
        "mints for anyone; `denylist` grows with tokens and also falls to the signing key; "
        "`session` pays a read on every request and O(sessions) state; `plain` revokes "
        "nothing."
    )
    return lines


def render_markdown(result: Comparison, command: str) -> str:
    """The page written to ``docs/comparison.md``."""
    machine = "\n".join(f"- {key}: {value}" for key, value in result.machine.items())
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
            f"Run: {result.size.users:,} users x {result.size.tokens} tokens per strategy, "
            f"SQLite files, {result.seconds} s in total. Machine:",
            "",
            machine,
            "",
            "Every security cell is the outcome of an executed attack: the attacker builds "
            "tokens from exactly what it holds (a read-only copy of the SQLite file, the "
            "application signing key or session server key, the KEK) and the real verifier "
            "judges them. Round trips are counted with SQLAlchemy `before_cursor_execute` "
            "events; sizes are measured with SQLite's `dbstat` (tables and indexes, the "
            "application's own users table excluded).",
            "",
            render_table(result.cells),
            "## Reading",
            "",
            *_reading(result),
            "",
            "Not yet measured here: PostgreSQL and Redis stores, and revocation latency across "
            "nodes (see `sjti bench`, which measures propagation over the bus).",
            "",
        ]
    )
