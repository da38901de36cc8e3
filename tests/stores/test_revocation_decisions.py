"""The decisions every store shares, without a database: who is told, who acknowledged,
what the audit trail says, which cohorts are refused and how stored secrets open.

These run in the mutation set (``make mutate``): each test pins one decision of
``sjti.stores._revocation`` exactly, so a changed comparison or a dropped listener fails.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sjti._core.wrapping import Kek, KekRing
from sjti.errors import UnwrapError
from sjti.stores._revocation import (
    acknowledgement,
    announce,
    check_cohort,
    describe_cohort,
    describe_ids,
    describe_user,
    listed,
    new_wrapped,
    open_secret,
    result_for,
    utc_now,
)
from sjti.stores.base import (
    MAX_LISTED_IDS,
    Acknowledgement,
    Cohort,
    CohortError,
    ListenerError,
    NodeRecord,
    RevocationEvent,
    RevocationResult,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
RING = KekRing([Kek("k1", bytes(range(32)))])


def node(name: str, watermark: int) -> NodeRecord:
    return NodeRecord(name, watermark, seen_at=T0, started_at=T0, info=None)


def result(*ids: str, event_id: int | None = 7, **options: Any) -> RevocationResult:
    options.setdefault("dry_run", False)
    options.setdefault("audit_id", 1)
    return RevocationResult(len(ids), tuple(ids), event_id=event_id, **options)


# ---------------------------------------------------------------------------------------
# acknowledgement


def test_a_node_has_applied_an_event_once_its_watermark_reaches_it() -> None:
    """Watermark == event id counts as applied; one below does not."""
    nodes = [node("behind", 41), node("at", 42), node("ahead", 43)]
    assert Acknowledgement(42, ("at", "ahead"), ("behind",)) == acknowledgement(42, nodes)


def test_no_live_nodes_is_a_complete_acknowledgement() -> None:
    """Nobody left to wait for: complete, with nothing pending."""
    ack = acknowledgement(1, [])
    assert (ack.acknowledged, ack.pending, ack.complete) == ((), (), True)


# ---------------------------------------------------------------------------------------
# announce


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[Any] = []
        self.fail = fail

    def __call__(self, value: Any) -> None:
        self.calls.append(value)
        if self.fail is not None:
            raise self.fail


def test_announce_tells_id_listeners_the_ids_and_event_listeners_the_event() -> None:
    """Both kinds of listener hear of a committed revocation, with its exact content."""
    ids, events = Recorder(), Recorder()
    announce([ids], [events], result("alice", "bob"), "users")
    assert ids.calls == [("alice", "bob")]
    assert [RevocationEvent(7, "users", ("alice", "bob"))] == events.calls


def test_announce_of_a_truncated_result_means_everyone() -> None:
    """A result too large to list is announced as None: every cache drops everything."""
    ids, events = Recorder(), Recorder()
    announce([ids], [events], result("alice", truncated=True), "cohort")
    assert ids.calls == [None]
    assert [RevocationEvent(7, "cohort", None)] == events.calls


@pytest.mark.parametrize(
    "done", [result("alice", dry_run=True), RevocationResult(0, (), dry_run=False, audit_id=1)]
)
def test_announce_is_silent_for_dry_runs_and_empty_results(done: RevocationResult) -> None:
    """Nothing changed, so nobody must drop anything."""
    ids, events = Recorder(), Recorder()
    announce([ids], [events], done, "users")
    assert (ids.calls, events.calls) == ([], [])


def test_announce_without_an_event_tells_only_id_listeners() -> None:
    """A store without an event log has no event to relay."""
    ids, events = Recorder(), Recorder()
    announce([ids], [events], result("alice", event_id=None), "user")
    assert (ids.calls, events.calls) == ([("alice",)], [])


def test_every_id_listener_runs_then_the_first_failure_surfaces() -> None:
    """One broken subscriber cannot keep the others stale; the caller learns of it."""
    first_error, second_error = RuntimeError("first"), RuntimeError("second")
    broken, other, last = Recorder(first_error), Recorder(second_error), Recorder()
    events = Recorder()
    done = result("alice")
    with pytest.raises(ListenerError) as excinfo:
        announce([broken, other, last], [events], done, "user")
    assert excinfo.value.__cause__ is first_error
    assert done is excinfo.value.result
    assert [len(r.calls) for r in (broken, other, last, events)] == [1, 1, 1, 1]


def test_event_listener_failures_are_logged_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The log is the truth: a failed relay must not fail the revocation, nor stop the next."""
    broken, after = Recorder(ConnectionError("bus down")), Recorder()
    with caplog.at_level(logging.WARNING, logger="sjti.stores"):
        announce([], [broken, after], result("alice"), "user")
    assert [len(broken.calls), len(after.calls)] == [1, 1]
    assert [r.getMessage() for r in caplog.records] == ["event listener failed: ConnectionError"]


# ---------------------------------------------------------------------------------------
# results and audit wording


def test_result_is_sorted_and_lists_at_most_the_limit() -> None:
    """count is the full number; user_ids the first MAX_LISTED_IDS in order."""
    ids = [f"u{i:05d}" for i in range(MAX_LISTED_IDS, -1, -1)]
    done = result_for(ids, dry_run=False, audit_id=9)
    assert (
        done.count,
        done.truncated,
        done.audit_id,
        done.dry_run,
    ) == (MAX_LISTED_IDS + 1, True, 9, False)
    assert tuple(sorted(ids)[:MAX_LISTED_IDS]) == done.user_ids


def test_result_at_the_limit_is_not_truncated() -> None:
    """Exactly MAX_LISTED_IDS ids are all listed."""
    ids = [f"u{i:05d}" for i in range(MAX_LISTED_IDS)]
    done = result_for(reversed(ids), dry_run=True, audit_id=None)
    assert (
        done.count,
        done.truncated,
        done.dry_run,
        done.audit_id,
    ) == (MAX_LISTED_IDS, False, True, None)
    assert tuple(ids) == done.user_ids


def test_listed_names_ids_up_to_the_limit_and_everyone_beyond() -> None:
    """The announcement lists at most MAX_LISTED_IDS ids, else None (drop everything)."""
    ids = ["u"] * MAX_LISTED_IDS
    assert ids is listed(ids)
    assert listed([*ids, "u"]) is None


def test_audit_descriptions_are_exact_and_secret_free() -> None:
    """The audit trail shows criteria and counts, never the ids of a cohort."""
    cohort = Cohort(
        user_ids=frozenset({"alice", "bob"}),
        tenant="acme",
        role="admin",
        created_before=T0,
        last_login_before=T0,
        rotated_before=T0,
        equals={"plan": "free", "beta": True},
    )
    assert describe_cohort(cohort) == (
        "tenant=acme, role=admin, created_before=2030-01-01 00:00:00+00:00, "
        "last_login_before=2030-01-01 00:00:00+00:00, "
        "rotated_before=2030-01-01 00:00:00+00:00, user_ids=<2>, beta=True, plan=free"
    )
    assert describe_cohort(Cohort(tenant="acme")) == "tenant=acme"
    assert describe_user("alice") == "user_id=alice"
    assert describe_ids(3) == "3 ids requested"


# ---------------------------------------------------------------------------------------
# cohorts


@pytest.mark.parametrize(
    "cohort",
    [
        Cohort(),
        Cohort(created_before=datetime(2030, 1, 1)),
        Cohort(tenant="a", last_login_before=datetime(2030, 1, 1)),
        Cohort(tenant="a", rotated_before=datetime(2030, 1, 1)),
        Cohort(tenant="a", created_before="2030-01-01"),  # type: ignore[arg-type]
    ],
)
def test_unsafe_cohorts_are_refused(cohort: Cohort) -> None:
    """Empty means everyone; a naive or string date is read in an unknown zone."""
    with pytest.raises(CohortError):
        check_cohort(cohort)


@pytest.mark.parametrize(
    "cohort",
    [
        Cohort(tenant="a"),
        Cohort(created_before=T0),
        Cohort(last_login_before=T0 + timedelta(days=1)),
        Cohort(rotated_before=T0.astimezone(UTC)),
    ],
)
def test_safe_cohorts_pass(cohort: Cohort) -> None:
    """One criterion with aware datetimes is enough."""
    check_cohort(cohort)


# ---------------------------------------------------------------------------------------
# secrets


def test_new_wrapped_secret_opens_for_its_user_under_the_primary_kek() -> None:
    """A fresh 32-byte key, wrapped under the primary, opens through open_secret."""
    wrapped = new_wrapped(RING, "alice")
    key = open_secret(RING, "alice", wrapped.to_str(), "k1")
    assert (len(key), wrapped.kek_id) == (32, "k1")
    assert key == open_secret(RING, "alice", wrapped.to_str())
    assert new_wrapped(RING, "alice").blob != wrapped.blob


def test_open_secret_refuses_a_kek_column_that_disagrees_with_the_text() -> None:
    """A row edited by hand (kek_id column changed) fails closed."""
    text = new_wrapped(RING, "alice").to_str()
    with pytest.raises(UnwrapError):
        open_secret(RING, "alice", text, "k2")
    with pytest.raises(UnwrapError):
        open_secret(RING, "bob", text)


def test_utc_now_is_aware_utc() -> None:
    """The store clock never hands out naive datetimes."""
    now = utc_now()
    assert now.tzinfo == UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
