"""The soak's report: the verdict, and the Markdown table docs/reliability.md embeds."""

from __future__ import annotations

from typing import Any

from ._soak_check import MUST_BE_ZERO

__all__ = ["failures", "markdown"]

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("requests", "HTTP requests sent", "> 0"),
    ("users", "users that got tokens", ""),
    ("tokens_minted", "token pairs minted (logins + refreshes)", ""),
    ("revocations", "revocations settled (logout + admin)", "> 0"),
    ("revocations_logout", "… by `POST /logout`", ""),
    ("revocations_admin", "… by `POST /admin/revocations`", ""),
    ("revocations_confirmed_by_401_after_error", "… logouts settled by a 401 after an error", ""),
    ("revocations_retried", "… that needed more than one attempt", ""),
    ("revocations_unconfirmed", "revocations given up (never settled)", ""),
    ("refreshes_racing_a_revocation", "refreshes of a revoked session in flight during it", ""),
    ("probes_of_revoked_tokens_after_return", "`/me` probes of revoked tokens after return", "> 0"),
    ("revocations_probed_everywhere_in_bound", "revocations probed on all nodes in the bound", ""),
    ("accepted_after_return_same_node", "acceptances after return, same node", "0"),
    ("accepted_inside_bound_other_nodes", "acceptances inside the staleness bound", ""),
    ("accepted_inside_bound_max_ms", "… latest of them, ms after return", "≤ bound"),
    ("accepted_beyond_bound_other_nodes", "acceptances beyond the staleness bound", "0"),
    ("refresh_accepted_after_return", "refreshes of a revoked session accepted after return", "0"),
    ("server_errors_5xx", "5xx answers other than 503", "0"),
    ("status_503", "503 answers (fail closed during outages)", ""),
    ("no_answer", "requests without an answer (killed node, cut connection)", ""),
    ("revocations_lost", "revocations answered 2xx without an audit row", "0"),
    ("audit_rows", "rows in `sjti_revocation_audit`", ""),
    ("event_rows", "rows in `sjti_revocation_events` (if the table exists)", ""),
    ("unexpected_server_exits", "server processes that died unasked", "0"),
    ("faults_not_recovered", "faults not recovered from within 30 s", "0"),
)  # fmt: skip


def failures(report: dict[str, Any]) -> list[str]:
    """The must-be-zero numbers that are not zero, as ``name=value``."""
    return [f"{name}={report[name]}" for name in MUST_BE_ZERO if report.get(name)]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _seconds(value: float | None) -> str:
    return "not within 30 s" if value is None else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """Two tables: the checker's numbers, then each fault and its time to recover trust."""
    config = report["config"]
    lines = [
        f"Soak: {config['duration_s']:.0f} s of load on {config['nodes']} nodes "
        f"({config['load_s']:.0f} s with settling), seed {config['seed']}, staleness bound "
        f"{config['bound_ms']:.0f} ms, faults {', '.join(config['schedule']) or 'none'}, "
        f"commit `{report.get('commit') or 'unknown'}`: **{report['verdict']}**.",
        "",
        "| measure | value | must be |",
        "|---|---:|---|",
    ]
    lines += [
        f"| {label} | {_cell(report.get(name))} | {want} |"
        for name, label, want in _ROWS
        if name in report
    ]
    minted = report.get("violating_tokens_minted") or {}
    if any(minted.values()):
        lines += [
            "",
            "Tokens behind the acceptances that must be 0, by when they were minted: "
            + ", ".join(f"{when.replace('_', ' ')} {n}" for when, n in minted.items())
            + ".",
        ]
    lines += [
        "",
        "| fault | node | at (s) | down (s) | all nodes ready after (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f['kind']} | {_cell(f['node'])} | {f['at']:.1f} | {f['down_s']:.2f} "
        f"| {_seconds(f['recovered_s'])} |"
        for f in report["faults"]
    ]
    return "\n".join(lines) + "\n"
