"""The scenarios: each runs one contender through one situation and returns its cell.

Security cells come from executing the attack (:mod:`sjti.compare._attacks`) against the
real verifier; capability cells from doing the revocation and checking which tokens the
verifier still accepts; numbers from measuring. Nothing here is typed in by hand.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import SjtiError
from . import _db
from ._attacks import Loot, candidates
from ._cells import BROKEN, CANNOT_FORGE, FORGES, UNCHECKED, Cell, CompareError
from ._contender import Contender
from ._measure import per_call_us
from ._world import AppSecrets

__all__ = [
    "LEAKS",
    "Size",
    "capability_cells",
    "latency_cell",
    "latency_verdict",
    "leak_cell",
    "population_cells",
    "runtime_cells",
]

LATENCY_DEADLINE_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Size:
    """How big a run is: the population and the timing loops."""

    users: int
    tokens: int
    loops: int
    revocations: int = 10  # timed revocations across nodes


def accepted(contender: Contender, token: str) -> bool:
    """Whether the full verifier accepts ``token``; any refusal (or outage) is False."""
    try:
        contender.verify(token)
    except SjtiError:
        return False
    return True


def _expect_accepted(contender: Contender, tokens: Sequence[str], what: str) -> None:
    if not all(accepted(contender, token) for token in tokens):
        raise CompareError(f"{contender.name}: a fresh token was refused ({what})")


def _cell(contender: Contender, scenario: str, verdict: str, value: float | None = None) -> Cell:
    return Cell(contender.name, scenario, verdict, value, contender.backend)


# --- revocation capability ----------------------------------------------------------------


def _logout_everywhere(c: Contender) -> Cell:
    user, other = "logout-user", "logout-other"
    _db.add_app_users(c.engine, [user, other])
    tokens, kept = c.issue([user, user, user]), c.issue([other])
    _expect_accepted(c, [*tokens, *kept], "logout")
    c.revoke_users([user])
    refused = sum(not accepted(c, token) for token in tokens)
    if not accepted(c, kept[0]):
        return _cell(c, "logout_everywhere", f"{BROKEN}: another user was logged out")
    if refused == len(tokens):
        return _cell(c, "logout_everywhere", "yes")
    if refused == 0:
        return _cell(c, "logout_everywhere", "no")
    return _cell(c, "logout_everywhere", f"{BROKEN}: {len(tokens) - refused} tokens survive")


def _revoke_one(c: Contender) -> Cell:
    user = "one-user"
    _db.add_app_users(c.engine, [user])
    target, sibling = c.issue([user, user])
    _expect_accepted(c, [target, sibling], "revoke one")
    if not c.revoke_token(target):
        granularity = " (whole user only)" if c.needs_state else ""
        return _cell(c, "revoke_one", f"no{granularity}")
    if accepted(c, target):
        return _cell(c, "revoke_one", f"{BROKEN}: the revoked token survives")
    if not accepted(c, sibling):
        return _cell(c, "revoke_one", f"{BROKEN}: the user's other token died too")
    return _cell(c, "revoke_one", "yes")


def _rows(c: Contender) -> tuple[int, str]:
    """Rows (or Redis keys) of revocation state now, and what they count."""
    count, unit = c.state_size()[1].split(" ", 1)
    return int(count), unit


def _trips(n: int) -> str:
    return f"{n} round trip{'' if n == 1 else 's'}"


def _revoke_device(c: Contender) -> Cell:
    """A user signed in on devices A and B (another user on a third), A signed out the way
    the design can; then which tokens the verifier still takes. The cost is measured on the
    way: round trips to verify a device's token (alone, and with the app's user row
    loaded), rows of state a sign-in and an issued token add."""
    d = c.with_devices()
    user, other = "device-user", "device-other"
    _db.add_app_users(d.engine, [user, other])
    d.issue([user, other])  # the state each user has anyway
    before, unit = _rows(d)
    a = d.sign_in(user)
    signed_in, _ = _rows(d)
    on_a = d.issue_on(user, a, 2)
    per_token = (_rows(d)[0] - signed_in) / len(on_a)
    b, elsewhere = d.sign_in(user), d.sign_in(other)
    on_b, others = d.issue_on(user, b, 2), d.issue_on(other, elsewhere, 1)
    _expect_accepted(d, [*on_a, *on_b, *others], "revoke one device")
    counter = _db.RoundTripCounter(d.engine, d.commands_sent)
    try:
        alone = counter.measure(lambda: d.verify(on_b[0]))
        extra = counter.measure(lambda: d.verify_with_user_row(on_b[0])) - 1  # the app's read
    finally:
        counter.close()
    scope = d.sign_out_device(user, a)
    a_left = sum(accepted(d, token) for token in on_a)
    b_left = sum(accepted(d, token) for token in on_b)
    if not all(accepted(d, token) for token in others):
        return _cell(d, "revoke_device", f"{BROKEN}: another user was logged out")
    if scope is None:
        if a_left < len(on_a) or b_left < len(on_b):
            return _cell(d, "revoke_device", f"{BROKEN}: refuses tokens it cannot revoke")
        return _cell(d, "revoke_device", "no")
    if a_left:
        return _cell(d, "revoke_device", f"{BROKEN}: the signed-out device keeps {a_left} tokens")
    if scope == "device" and b_left < len(on_b):
        return _cell(d, "revoke_device", f"{BROKEN}: the user's other device was signed out")
    if scope == "user" and b_left:
        return _cell(d, "revoke_device", f"{BROKEN}: device B outlives a whole-user sign-out")
    if scope == "user":
        outcome = "all devices (A and B refused)"
    elif per_token > 0:  # measured: the design holds a row for every token it issues
        outcome = "yes, each jti listed (A refused, B kept)"
    else:
        outcome = "yes (A refused, B kept)"
    per_device = signed_in - before
    cost = (
        f"{_trips(alone)}/verify ({extra} extra with the user row); "
        f"+{per_device} {unit}/device, +{per_token:g} {unit}/token"
    )
    return _cell(d, "revoke_device", f"{outcome}; {cost}", extra)


def _db_unavailable(c: Contender, scratch: Path) -> Cell:
    """Point the state port at a database that cannot be opened; must never accept blind."""
    user = "outage-user"
    _db.add_app_users(c.engine, [user])
    (token,) = c.issue([user])
    _expect_accepted(c, [token], "outage")
    dead = c.on(_db.dead_engine(c.engine, scratch))
    try:
        dead.check_boundary(token)
        boundary = "boundary ok"
    except SjtiError:
        boundary = "boundary fails"
    try:
        dead.verify(token)
        user_layer = UNCHECKED if c.needs_state else "no user layer (accepts)"
    except SjtiError:
        user_layer = "user layer fails closed"
    try:
        dead.issue([user])
        issuing = "issue ok"
    except SjtiError:
        issuing = "issue fails"
    return _cell(c, "db_unavailable", f"{boundary}, {user_layer}, {issuing}")


def capability_cells(c: Contender, scratch: Path) -> list[Cell]:
    return [_logout_everywhere(c), _revoke_one(c), _revoke_device(c), _db_unavailable(c, scratch)]


# --- leaks: executed attacks --------------------------------------------------------------

# scenario -> (DB copy, app signing/server key, KEK)
LEAKS: dict[str, tuple[bool, bool, bool]] = {
    "leak_db_copy": (True, False, False),
    "leak_app_key": (False, True, False),
    "leak_db_copy_app_key": (True, True, False),
    "leak_db_copy_app_secrets": (True, True, True),
}


def leak_cell(c: Contender, app: AppSecrets, scenario: str, scratch: Path) -> Cell:
    """Give the attacker what ``scenario`` leaks; "forges" if the verifier takes any token."""
    with_db, with_key, with_kek = LEAKS[scenario]
    victim = f"victim-{scenario}"
    _db.add_app_users(c.engine, [victim])
    stolen, still_live = c.issue([victim, victim])
    _expect_accepted(c, [stolen, still_live], scenario)
    # the attacker's own read-only copy of the stores, taken after every commit
    copy = c.read_copy(scratch) if with_db else None
    loot = Loot(
        victim=victim,
        db_copy=copy,
        signing_secret=app.signing_secret if with_key else None,
        session_secret=app.session_secret if with_key else None,
        kek=app.kek if with_kek else None,
        stolen=stolen,
    )
    forged = [t for t in candidates(c.name, loot) if t != stolen and accepted(c, t)]
    return _cell(c, scenario, FORGES if forged else CANNOT_FORGE)


# --- population: state size and cohort revocation -----------------------------------------


def _human(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MiB"
    return f"{size / 1024:.0f} KiB"


def population_cells(c: Contender, size: Size) -> list[Cell]:
    """U users with T tokens each: bytes of state, then revoke every tenth user."""
    users = [f"p{i:06d}" for i in range(size.users)]
    _db.add_app_users(c.engine, users)
    tokens = c.issue([user for user in users for _ in range(size.tokens)])
    state, holds = c.state_size()
    label = f"{size.users}x{size.tokens}: {_human(state)}, {holds}"
    cohort = users[::10]
    hit = [tokens[i * size.tokens] for i in range(0, len(users), 10)][:100]
    spared = [tokens[i * size.tokens] for i in range(1, len(users), 10)][:100]
    _expect_accepted(c, hit + spared, "cohort")
    start = time.perf_counter()
    c.revoke_users(cohort)
    ms = round((time.perf_counter() - start) * 1e3, 2)
    refused = sum(not accepted(c, token) for token in hit)
    if any(not accepted(c, token) for token in spared):
        verdict, value = f"{BROKEN}: users outside the cohort were revoked", None
    elif refused == 0:
        verdict, value = "no", None
    elif refused < len(hit):
        verdict, value = f"{BROKEN}: {len(hit) - refused} revoked tokens survive", None
    else:
        verdict, value = f"{ms:.0f} ms ({len(cohort)} users)", ms
    after, after_holds = c.state_size()
    label += f"; after revoking 10%: {_human(after)}, {after_holds}"
    return [_cell(c, "state_bytes", label, state), _cell(c, "revoke_cohort", verdict, value)]


# --- round trips and cost -----------------------------------------------------------------


def runtime_cells(c: Contender, size: Size) -> tuple[list[Cell], str]:
    """Round trips counted on the engine, and µs per call; also returns a fresh token."""
    user = "runtime-user"
    _db.add_app_users(c.engine, [user])
    (token,) = c.issue([user])
    _expect_accepted(c, [token], "runtime")
    counter = _db.RoundTripCounter(c.engine, c.commands_sent)
    try:
        trips = counter.measure(lambda: c.verify(token))
        extra = counter.measure(lambda: c.verify_with_user_row(token)) - 1  # the app's own read
    finally:
        counter.close()
    boundary = per_call_us(lambda: c.check_boundary(token), size.loops)
    full = per_call_us(lambda: c.verify(token), max(1, size.loops // 4))
    cells = [
        _cell(c, "round_trips", str(trips), trips),
        _cell(c, "round_trips_user_row", f"{extra} extra", extra),
        _cell(c, "boundary_us", f"{boundary:.1f} us", boundary),
        _cell(c, "verify_us", f"{full:.1f} us", full),
    ]
    return cells, token


# --- revocation latency across nodes ------------------------------------------------------


def _p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def latency_verdict(latencies_ms: Sequence[float], note: str = "") -> tuple[str, float]:
    """``p50 3.1 ms, p99 4.2 ms (50 revocations)`` and the p99 in ms."""
    p50, p99 = round(statistics.median(latencies_ms), 2), round(_p99(latencies_ms), 2)
    extra = f", {note}" if note else ""
    verdict = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(latencies_ms)} revocations{extra})"
    return verdict, p99


def latency_cell(c: Contender, size: Size) -> Cell:
    """Revoke through node A (``c``), then verify the old token through node B (``c.peer()``,
    its own connections to the same store) in a tight loop until refused. Timed from the
    moment the revocation returned; these designs keep no per-node cache, so node B's next
    store read sees it."""
    if not c.needs_state:
        return _cell(c, "revocation_latency", "not possible")
    node_b = c.peer()
    latencies: list[float] = []
    try:
        for i in range(size.revocations):
            user = f"latency-{i}"
            _db.add_app_users(c.engine, [user])
            (token,) = c.issue([user])
            _expect_accepted(node_b, [token], "latency, node B")
            c.revoke_users([user])
            returned = time.perf_counter()
            while accepted(node_b, token):
                if time.perf_counter() - returned > LATENCY_DEADLINE_S:
                    verdict = f"{BROKEN}: node B accepts {LATENCY_DEADLINE_S:.0f} s later"
                    return _cell(c, "revocation_latency", verdict)
            latencies.append((time.perf_counter() - returned) * 1e3)
    finally:
        node_b.close()
    verdict, p99 = latency_verdict(latencies)
    return _cell(c, "revocation_latency", verdict, p99)
