"""The independent checker: verdicts from client-side timings alone (pure, no I/O).

**Which tokens a revocation R must end.** A token is *revoked by R* when R names its user
and its session (refresh family) unambiguously existed before R: the password login that
started the session *returned* before R's first attempt was sent. That covers every
access token refreshed from such a session, even one whose refresh overlapped R or came
after it: such a refresh, if it succeeded, either happened before R (so R ends its
tokens) or after R (so it should have been refused, R ended the family). A login still
in flight when R started is ambiguous (it may be ordered after R) and never counted.

**What counts.** Each ``/me`` answered 200 with a token revoked by R whose request was
*sent after R's answer arrived*:

* on the node that answered R: an *acceptance after return* (must be 0);
* on another node, at most ``bound`` seconds after R returned: *inside the staleness
  bound* (allowed: counted, with the worst delay);
* on another node, later than that: *beyond the bound* (must be 0).

Each refresh answered 200 that spent a refresh token revoked by R, sent after R
returned, on any node (refresh tokens are never cached): must be 0. A probe that could
match several revocations is judged by the worst. All times are one process's
``time.monotonic()``, so no clock skew can make a false positive.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._soak_record import Mint, Probe, Refresh, Request, Revocation

__all__ = ["MUST_BE_ZERO", "Evidence", "check"]

MUST_BE_ZERO = (
    "accepted_after_return_same_node",
    "accepted_beyond_bound_other_nodes",
    "refresh_accepted_after_return",
    "server_errors_5xx",
    "revocations_lost",
    "unexpected_server_exits",
    "faults_not_recovered",
)
_EXAMPLES = 8  # violations kept as examples per kind
_SAME, _BEYOND, _INSIDE = 3, 2, 1


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the checker reads: the client's records and the final database state."""

    requests: Sequence[Request]
    mints: Sequence[Mint]
    probes: Sequence[Probe]
    refreshes: Sequence[Refresh]
    revocations: Sequence[Revocation]
    unconfirmed: Sequence[dict[str, Any]]
    audit: Sequence[dict[str, Any]]  # rows of sjti_revocation_audit
    event_rows: int | None  # rows of sjti_revocation_events, None if no such table
    bound: float  # staleness bound on other nodes, seconds
    nodes: int


def _covering(mint: Mint, at: float, by_user: dict[str, list[Revocation]]) -> Iterable[Revocation]:
    """Revocations that ended ``mint`` and had returned before ``at``."""
    return (r for r in by_user.get(mint.user, ()) if mint.root_end < r.start and r.end < at)


_WHEN = ("before_revocation", "during_revocation", "after_return")


def _when(mint: Mint, rev: Revocation) -> str:
    """The minting request against R: answered before R began, overlapping R, or after."""
    if mint.end < rev.start:
        return _WHEN[0]
    return _WHEN[1] if mint.start < rev.end else _WHEN[2]


def _example(mint: Mint, rev: Revocation, node: int, at: float) -> dict[str, Any]:
    return {
        "user": mint.user,
        "revocation": rev.id,
        "revocation_kind": rev.kind,
        "confirmed_by": rev.confirmed_by,
        "revoked_on_node": rev.node,
        "accepted_on_node": node,
        "ms_after_return": round((at - rev.end) * 1000, 1),
        "token_grant": mint.grant,
        "token_minted_on_node": mint.node,
        "token_request_started_ms_before_revocation": round((rev.start - mint.start) * 1000, 1),
        "token_minted": _when(mint, rev),
    }


def _acceptances(ev: Evidence, by_user: dict[str, list[Revocation]]) -> dict[str, Any]:
    counts = Counter[str]()
    inside_max = 0.0
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    probed_nodes: set[tuple[int, int]] = set()  # (revocation, node) probed inside the bound
    for probe in ev.probes:
        mint = ev.mints[probe.mint]
        worst: tuple[int, Revocation] | None = None
        for rev in _covering(mint, probe.start, by_user):
            same = probe.node == rev.node
            counts["probes_after_return_same_node" if same else "probes_after_return_other"] += 1
            if probe.start - rev.end <= ev.bound:
                probed_nodes.add((rev.id, probe.node))
            if probe.status != 200:
                continue
            late = probe.start - rev.end > ev.bound
            grade = _SAME if same else _BEYOND if late else _INSIDE
            if worst is None or grade > worst[0]:
                worst = (grade, rev)
        if worst is None:
            continue
        grade, rev = worst
        name = {
            _SAME: "accepted_after_return_same_node",
            _BEYOND: "accepted_beyond_bound_other_nodes",
            _INSIDE: "accepted_inside_bound_other_nodes",
        }[grade]
        counts[name] += 1
        if grade == _INSIDE:
            inside_max = max(inside_max, probe.start - rev.end)
        else:
            counts[f"violating_token_minted_{_when(mint, rev)}"] += 1
        if len(examples[name]) < _EXAMPLES:
            examples[name].append(_example(mint, rev, probe.node, probe.start))
    everywhere = sum(
        all((rev.id, node) in probed_nodes for node in range(ev.nodes)) for rev in ev.revocations
    )
    return {
        "accepted_after_return_same_node": counts["accepted_after_return_same_node"],
        "accepted_inside_bound_other_nodes": counts["accepted_inside_bound_other_nodes"],
        "accepted_inside_bound_max_ms": round(inside_max * 1000, 1),
        "accepted_beyond_bound_other_nodes": counts["accepted_beyond_bound_other_nodes"],
        "probes_of_revoked_tokens_after_return": counts["probes_after_return_same_node"]
        + counts["probes_after_return_other"],
        "probes_of_revoked_tokens_after_return_same_node": counts["probes_after_return_same_node"],
        "revocations_probed_everywhere_in_bound": everywhere,
        # where the tokens behind the must-be-zero acceptances came from
        "violating_tokens_minted": {
            when: counts[f"violating_token_minted_{when}"] for when in _WHEN
        },
        "examples": dict(examples),
    }


def _refreshes(ev: Evidence, by_user: dict[str, list[Revocation]]) -> dict[str, Any]:
    accepted, racing = 0, 0
    examples: list[dict[str, Any]] = []
    for use in ev.refreshes:
        parent = ev.mints[use.parent]
        for rev in by_user.get(parent.user, ()):
            if parent.root_end < rev.start and use.start < rev.end and use.end > rev.start:
                racing += 1
        if use.status != 200:
            continue
        late = list(_covering(parent, use.start, by_user))
        if late:
            accepted += 1
            if len(examples) < _EXAMPLES:
                examples.append(_example(parent, late[0], use.node, use.start))
    return {
        "refresh_accepted_after_return": accepted,
        "refreshes_racing_a_revocation": racing,
        "refresh_examples": examples,
    }


def _lost(ev: Evidence) -> dict[str, Any]:
    """Revocations answered 2xx without their audit row."""
    reasons = Counter(str(row.get("reason")) for row in ev.audit)
    logouts = Counter(
        str(row.get("actor")) for row in ev.audit if row.get("reason") == "logout (all devices)"
    )
    lost: list[dict[str, Any]] = []
    wanted = Counter[str]()
    for rev in ev.revocations:
        if rev.confirmed_by != "2xx":
            continue
        if rev.kind == "admin" and reasons[rev.reason] == 0:
            lost.append({"revocation": rev.id, "kind": "admin", "reason": rev.reason})
        if rev.kind == "logout":
            wanted[rev.users[0]] += 1
            if wanted[rev.users[0]] > logouts[rev.users[0]]:
                lost.append({"revocation": rev.id, "kind": "logout", "user": rev.users[0]})
    return {"revocations_lost": len(lost), "lost_examples": lost[:_EXAMPLES]}


def _http(ev: Evidence) -> dict[str, Any]:
    errors = [
        r for r in ev.requests if r.status is not None and r.status >= 500 and r.status != 503
    ]
    by_endpoint = Counter(r.endpoint for r in ev.requests)
    return {
        "requests": len(ev.requests),
        "requests_by_endpoint": dict(sorted(by_endpoint.items())),
        "server_errors_5xx": len(errors),
        "server_error_examples": [
            {"status": r.status, "endpoint": r.endpoint, "node": r.node, "at_s": round(r.start, 3)}
            for r in errors[:_EXAMPLES]
        ],
        "status_503": sum(r.status == 503 for r in ev.requests),
        "no_answer": sum(r.status is None for r in ev.requests),
        "me_probes": len(ev.probes),
        "tokens_minted": len(ev.mints),
        "users": len({m.user for m in ev.mints}),
    }


def _settled(ev: Evidence) -> tuple[list[Revocation], int]:
    """The revocations to judge, and how many were set aside as ambiguous.

    A logout settled by a 401 after an error proves that *something* rotated the user's
    key. If the service also detected refresh-token reuse for that user before (it then
    rotates the key too), that something may not be the logout: set it aside.
    """
    reused: dict[str, float] = {}
    for use in ev.refreshes:
        if use.reuse:
            user = ev.mints[use.parent].user
            reused[user] = min(reused.get(user, use.start), use.start)
    kept = [
        rev
        for rev in ev.revocations
        if rev.confirmed_by == "2xx" or not any(reused.get(u, rev.end) < rev.end for u in rev.users)
    ]
    return kept, len(ev.revocations) - len(kept)


def check(ev: Evidence) -> dict[str, Any]:
    """Every number of the report but the faults' (see :mod:`._soak_faults`)."""
    revocations, ambiguous = _settled(ev)
    by_user: dict[str, list[Revocation]] = defaultdict(list)
    for rev in revocations:
        for user in rev.users:
            by_user[user].append(rev)
    kinds = Counter(rev.kind for rev in ev.revocations)
    return {
        **_http(ev),
        "revocations": len(ev.revocations),
        "revocations_logout": kinds["logout"],
        "revocations_admin": kinds["admin"],
        "revocations_confirmed_by_401_after_error": sum(
            rev.confirmed_by == "401-after-error" for rev in ev.revocations
        ),
        "revocations_retried": sum(rev.attempts > 1 for rev in ev.revocations),
        "revocations_unconfirmed": len(ev.unconfirmed),
        "revocations_set_aside_ambiguous": ambiguous,
        "users_revoked": len(by_user),
        **_acceptances(ev, by_user),
        **_refreshes(ev, by_user),
        **_lost(ev),
        "audit_rows": len(ev.audit),
        "event_rows": ev.event_rows,
    }
