"""The store contract, run on memory, SQLite and PostgreSQL, both layouts, sync and async."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sjti import Issuer, RevokedTokenError, UnwrapError, UserVerifier
from sjti.stores import (
    MAX_LISTED_IDS,
    Cohort,
    CohortError,
    ListenerError,
    UnknownUserError,
)

from ._harness import T0, Harness

pytestmark = pytest.mark.anyio

# Four users with secrets and one without; ids are numeric text so the app layout can use
# an INTEGER id column (the blog's users table).
POPULATION = {
    "101": {
        "tenant": "acme",
        "role": "admin",
        "created_at": datetime(2020, 1, 1, tzinfo=UTC),
        "last_login_at": datetime(2029, 12, 1, tzinfo=UTC),
        "plan": "free",
    },
    "102": {
        "tenant": "acme",
        "role": "user",
        "created_at": datetime(2023, 6, 1, tzinfo=UTC),
        "last_login_at": datetime(2029, 6, 1, tzinfo=UTC),
        "plan": "pro",
    },
    "103": {
        "tenant": "globex",
        "role": "admin",
        "created_at": datetime(2021, 1, 1, tzinfo=UTC),
        "last_login_at": None,
        "plan": "free",
    },
    "104": {
        "tenant": "globex",
        "role": "user",
        "created_at": datetime(2024, 1, 1, tzinfo=UTC),
        "last_login_at": datetime(2029, 12, 31, tzinfo=UTC),
        "plan": "pro",
    },
    "105": {  # never got a token: no secret, so never part of a revocation
        "tenant": "acme",
        "role": "user",
        "created_at": datetime(2019, 1, 1, tzinfo=UTC),
        "last_login_at": datetime(2028, 1, 1, tzinfo=UTC),
        "plan": "free",
    },
}
WITH_SECRET = ("101", "102", "103", "104")


async def populate(h: Harness) -> dict[str, bytes]:
    """Everyone gets a secret at T0 but 105; then 104 is revoked a month later."""
    for user_id, attributes in POPULATION.items():
        h.add_user(user_id, **attributes)
    for user_id in WITH_SECRET:
        await h.store.ensure(user_id)
    h.clock.advance(days=31)
    await h.store.revoke("104")
    return {user_id: _secret(h, user_id) for user_id in WITH_SECRET}


def _secret(h: Harness, user_id: str) -> bytes:
    secret = h.peek(user_id)
    assert secret is not None
    return secret


def _changed(h: Harness, before: dict[str, bytes]) -> set[str]:
    return {user_id for user_id, secret in before.items() if h.peek(user_id) != secret}


# -- load and ensure ---------------------------------------------------------------------


async def test_load_of_unknown_user_is_none(harness: Harness) -> None:
    """No secret means no key: the caller refuses the token, nothing is invented."""
    assert await harness.store.load("999") is None
    assert await harness.store.load_secret("999") is None


async def test_ensure_creates_a_secret_once(harness: Harness) -> None:
    """Lazy migration: the first token creates the key, later calls return the same one."""
    harness.add_user("101")
    assert await harness.store.load("101") is None
    first = await harness.store.ensure("101")
    second = await harness.store.ensure("101")
    loaded = await harness.store.load("101")
    assert loaded is not None
    assert first.secret_bytes() == second.secret_bytes() == loaded.secret_bytes()
    assert harness.peek("101") == first.secret_bytes()
    assert harness.version("101") == 1


async def test_load_secret_is_the_raw_key(harness: Harness) -> None:
    """Caches keep the 32 raw bytes; they must be the same key load() returns."""
    harness.add_user("101")
    key = await harness.store.ensure("101")
    secret = await harness.store.load_secret("101")
    assert secret == key.secret_bytes()
    assert len(secret) == 32


async def test_users_get_distinct_keys(harness: Harness) -> None:
    """Each user's key is their own random key, never shared or derived from the id."""
    for user_id in ("101", "102"):
        harness.add_user(user_id)
    first = await harness.store.ensure("101")
    second = await harness.store.ensure("102")
    assert first.secret_bytes() != second.secret_bytes()


# -- revoke ------------------------------------------------------------------------------


async def test_revoke_rotates_the_key(harness: Harness) -> None:
    """Revocation = a new random key and a higher version, committed when revoke returns."""
    harness.add_user("101")
    before = (await harness.store.ensure("101")).secret_bytes()
    result = await harness.store.revoke("101", actor="admin", reason="lost laptop")
    assert (result.count, result.user_ids, result.dry_run) == (1, ("101",), False)
    assert result.audit_id is not None
    after = harness.peek("101")
    assert after is not None
    assert after != before
    assert harness.version("101") == 2


async def test_revoke_of_unknown_user_raises_and_audits_nothing(harness: Harness) -> None:
    """A typo in an admin tool must be loud, not a silent "0 users logged out"."""
    harness.add_user("105")  # exists in the app, but never had a secret
    with pytest.raises(UnknownUserError):
        await harness.store.revoke("999")
    with pytest.raises(UnknownUserError):
        await harness.store.revoke("105")
    assert await harness.store.audit_log() == []


async def test_revoking_twice_is_two_rotations(harness: Harness) -> None:
    """Retrying a revocation is harmless: it rotates again and audits again."""
    harness.add_user("101")
    await harness.store.ensure("101")
    first = await harness.store.revoke("101")
    middle = harness.peek("101")
    second = await harness.store.revoke("101")
    assert (first.count, second.count) == (1, 1)
    assert harness.peek("101") != middle
    assert harness.version("101") == 3
    assert len(await harness.store.audit_log()) == 2


async def test_revoke_many_ignores_unknown_ids(harness: Harness) -> None:
    """Bulk revocation counts only users who had a key; strangers are skipped."""
    before = await populate(harness)
    result = await harness.store.revoke_many(["102", "101", "105", "999"], actor="ops")
    assert (result.count, result.user_ids) == (2, ("101", "102"))
    assert _changed(harness, before) == {"101", "102"}


async def test_revoke_many_of_nobody_changes_nothing(harness: Harness) -> None:
    """An empty list must not be mistaken for "everyone"."""
    before = await populate(harness)
    result = await harness.store.revoke_many([])
    assert result.count == 0
    assert _changed(harness, before) == set()


# -- cohorts -----------------------------------------------------------------------------

CRITERIA = {
    "user_ids": (Cohort(user_ids=frozenset({"101", "103", "105", "999"})), {"101", "103"}),
    "tenant": (Cohort(tenant="acme"), {"101", "102"}),
    "role": (Cohort(role="admin"), {"101", "103"}),
    "created_before": (Cohort(created_before=datetime(2022, 1, 1, tzinfo=UTC)), {"101", "103"}),
    # 103 never logged in (NULL): "before" never matches an unknown date.
    "last_login_before": (Cohort(last_login_before=datetime(2029, 9, 1, tzinfo=UTC)), {"102"}),
    "rotated_before": (Cohort(rotated_before=T0 + timedelta(days=15)), {"101", "102", "103"}),
    "equals": (Cohort(equals={"plan": "pro"}), {"102", "104"}),
}
COMBINED = {
    "tenant+role": (Cohort(tenant="acme", role="user"), {"102"}),
    "role+created": (
        Cohort(role="admin", created_before=datetime(2020, 6, 1, tzinfo=UTC)),
        {"101"},
    ),
    "ids+equals": (
        Cohort(user_ids=frozenset({"101", "102", "103"}), equals={"plan": "free"}),
        {"101", "103"},
    ),
    "tenant+rotated": (Cohort(tenant="globex", rotated_before=T0 + timedelta(days=15)), {"103"}),
    "nobody": (Cohort(tenant="acme", role="admin", equals={"plan": "pro"}), set()),
}


@pytest.mark.parametrize(("cohort", "expected"), CRITERIA.values(), ids=CRITERIA.keys())
async def test_cohort_selects_by_each_criterion(
    harness: Harness, cohort: Cohort, expected: set[str]
) -> None:
    """Incident response by attribute: exactly the matching users with a key rotate."""
    before = await populate(harness)
    result = await harness.store.revoke_cohort(cohort, actor="sec", reason="incident 42")
    assert set(result.user_ids) == expected
    assert result.count == len(expected)
    assert _changed(harness, before) == expected


@pytest.mark.parametrize(("cohort", "expected"), COMBINED.values(), ids=COMBINED.keys())
async def test_cohort_criteria_combine_with_and(
    harness: Harness, cohort: Cohort, expected: set[str]
) -> None:
    """Several criteria narrow the selection; widening it would log out the wrong people."""
    before = await populate(harness)
    result = await harness.store.revoke_cohort(cohort)
    assert set(result.user_ids) == expected
    assert _changed(harness, before) == expected


async def test_empty_cohort_is_refused(harness: Harness) -> None:
    """An empty filter would mean "everyone": refuse it before touching anything."""
    before = await populate(harness)
    with pytest.raises(CohortError):
        await harness.store.revoke_cohort(Cohort())
    assert _changed(harness, before) == set()


async def test_naive_cohort_dates_are_refused(harness: Harness) -> None:
    """A date without a zone means different instants to the app and the database."""
    before = await populate(harness)
    with pytest.raises(CohortError):
        await harness.store.revoke_cohort(Cohort(created_before=datetime(2030, 1, 1)))
    assert _changed(harness, before) == set()


# -- dry run and audit -------------------------------------------------------------------


async def test_dry_run_reports_and_changes_nothing(harness: Harness) -> None:
    """Operators preview who would be logged out; the preview must not log anyone out."""
    before = await populate(harness)
    audit_before = await harness.store.audit_log()
    calls: list[Sequence[str] | None] = []
    harness.store.add_listener(calls.append)
    cohort_run = await harness.store.revoke_cohort(Cohort(tenant="acme"), dry_run=True)
    many_run = await harness.store.revoke_many(["103", "999"], dry_run=True)
    assert (cohort_run.count, cohort_run.user_ids, cohort_run.dry_run) == (
        2,
        ("101", "102"),
        True,
    )
    assert (many_run.count, many_run.user_ids, many_run.audit_id) == (1, ("103",), None)
    assert _changed(harness, before) == set()
    assert harness.version("101") == 1
    assert await harness.store.audit_log() == audit_before
    assert calls == []


async def test_every_revocation_is_audited(harness: Harness) -> None:
    """When, by whom, why and how many: the trail an incident review needs, newest first."""
    await populate(harness)  # audits revoke("104") at T0 + 31 days
    harness.clock.advance(days=1)
    many = await harness.store.revoke_many(["101", "102"], actor="ops", reason="offboarding")
    cohort = await harness.store.revoke_cohort(Cohort(tenant="globex"), actor="sec")
    log = await harness.store.audit_log()
    assert [r.kind for r in log] == ["cohort", "users", "user"]
    assert [r.id for r in log] == [cohort.audit_id, many.audit_id, log[2].id]
    assert [r.count for r in log] == [2, 2, 1]
    assert (log[1].actor, log[1].reason) == ("ops", "offboarding")
    assert (log[0].actor, log[0].reason, log[0].detail) == ("sec", None, "tenant=globex")
    assert log[2].detail == "user_id=104"
    assert log[1].at == T0 + timedelta(days=32)
    assert log[1].at.tzinfo is not None
    assert [r.kind for r in await harness.store.audit_log(limit=1)] == ["cohort"]


# -- listeners ---------------------------------------------------------------------------


async def test_listeners_run_after_commit_with_the_ids(harness: Harness) -> None:
    """The bus publishes only what is durable: a listener already sees the new keys."""
    before = await populate(harness)
    seen: list[tuple[Sequence[str] | None, set[str]]] = []

    def listener(ids: Sequence[str] | None) -> None:
        seen.append((ids, _changed(harness, before)))  # reads through another connection

    harness.store.add_listener(listener)
    await harness.store.revoke_many(["102", "101"])
    await harness.store.revoke("103")
    assert seen == [(("101", "102"), {"101", "102"}), (("103",), {"101", "102", "103"})]


async def test_listeners_are_not_called_when_nothing_changed(harness: Harness) -> None:
    """No rotation, no announcement: failed revokes and empty selections stay quiet."""
    await populate(harness)
    calls: list[Sequence[str] | None] = []
    harness.store.add_listener(calls.append)
    with pytest.raises(UnknownUserError):
        await harness.store.revoke("999")
    await harness.store.revoke_many(["999"])
    assert calls == []


async def test_failing_listener_does_not_undo_or_silence_the_revocation(harness: Harness) -> None:
    """One broken subscriber must not keep other caches stale, nor hide the failure."""
    before = await populate(harness)
    later: list[Sequence[str] | None] = []

    def broken(ids: Sequence[str] | None) -> None:
        raise RuntimeError("bus down")

    harness.store.add_listener(broken)
    harness.store.add_listener(later.append)
    with pytest.raises(ListenerError) as caught:
        await harness.store.revoke("101")
    assert caught.value.result.user_ids == ("101",)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert later == [("101",)]
    assert _changed(harness, before) == {"101"}


async def test_listed_ids_limit_is_ten_thousand() -> None:
    """Bus messages and results stay bounded; the documented threshold is 10_000."""
    assert MAX_LISTED_IDS == 10_000


# -- the point of it all: revocation fails old tokens ------------------------------------


async def test_tokens_issued_before_revoke_fail_the_user_layer(
    harness: Harness, issuer: Issuer, verifier: UserVerifier
) -> None:
    """After revoke returns, every earlier token of that user is refused; new ones pass."""
    harness.add_user("101")
    harness.add_user("102")
    old_token = issuer.issue("101", await harness.store.ensure("101"))
    bystander = issuer.issue("102", await harness.store.ensure("102"))
    await harness.store.revoke("101")
    key = await harness.store.load("101")
    assert key is not None
    with pytest.raises(RevokedTokenError):
        verifier.verify(old_token, key)
    assert verifier.verify(issuer.issue("101", key), key)["sub"] == "101"
    other_key = await harness.store.load("102")
    assert other_key is not None
    assert verifier.verify(bystander, other_key)["sub"] == "102"


# -- fail closed on tampered rows --------------------------------------------------------


@pytest.mark.parametrize("how", ["flip", "other", "garbage"])
async def test_tampered_secret_raises_unwrap_error(harness: Harness, how: str) -> None:
    """An edited or swapped row never yields a key (nor None, which might read as "new")."""
    for user_id in ("101", "102"):
        harness.add_user(user_id)
        await harness.store.ensure(user_id)
    harness.tamper("101", how, other="102")
    with pytest.raises(UnwrapError):
        await harness.store.load("101")
    with pytest.raises(UnwrapError):
        await harness.store.load_secret("101")
    with pytest.raises(UnwrapError):
        await harness.store.ensure("101")  # never silently replaced either


async def test_revoke_repairs_a_tampered_secret(harness: Harness) -> None:
    """Revocation needs no unwrap, so an operator can always reset a broken row."""
    harness.add_user("101")
    await harness.store.ensure("101")
    harness.tamper("101", "flip")
    await harness.store.revoke("101")
    key = await harness.store.load("101")
    assert key is not None
    assert key.secret_bytes() == harness.peek("101")
