"""Attacks on the cohort revocation jobs (review): clocks that disagree, a resume racing
the run it takes over, the per-worker bound, a demoted admin, and a refresh racing the
batch that holds its user. Each ran against the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from sjti import RevokedTokenError
from sjti.errors import BackendError
from sjti.server import app as service
from sjti.server import job_rows
from sjti.server.auth import verify_access_token
from sjti.server.jobs import MAX_RUNNING, NotResumableError, RevocationJobs, TooManyJobsError
from sjti.server.services import Services
from sjti.server.settings import Settings
from sjti.server.users import get_by_name, set_role
from sjti.stores.base import Cohort, RevocationResult

from .test_races import (
    PASSWORD,
    password_grant,
    principal,
    refresh_grant,
    register_and_login,
    rounds,
)


@pytest.fixture
def services(service_database_url: str, tmp_path: Path) -> Iterator[Services]:
    """The service's stores on a database of this test's own (a cohort sees only its
    users)."""
    settings = Settings(database_url=service_database_url, key_file=str(tmp_path / "keys.json"))
    built = Services.build(settings)
    assert built.wait_ready(10)
    yield built
    built.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _ended(jobs: RevocationJobs, job_id: str) -> Any:
    deadline = time.monotonic() + 20
    while (job := jobs.get(job_id)) is not None and job.state == "running":
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    return job


def _users(services: Services, *names: str) -> list[dict[str, Any]]:
    return [register_and_login(services, name)[1] for name in names]


def _revoked(services: Services, tokens: dict[str, Any]) -> bool:
    try:
        verify_access_token(services, tokens["access_token"])
    except RevokedTokenError:
        return True
    return False


class _Gated:
    """The real store; a job's batches stop after the first until ``gate`` opens (a
    worker stalled between two batches: a slow disk, a long pause, a stuck thread)."""

    def __init__(self, store: Any) -> None:
        self._store, self.gate = store, threading.Event()

    def preview_batches(self, cohort: Cohort) -> RevocationResult:
        return self._store.preview_batches(cohort)  # type: ignore[no-any-return]

    def revoke_batches(self, cohort: Cohort, **options: Any) -> Iterator[RevocationResult]:
        batches = self._store.revoke_batches(cohort, **options)
        yield next(batches)
        assert self.gate.wait(20)
        yield from batches


def test_a_worker_whose_clock_runs_behind_still_revokes_the_whole_cohort(
    services: Services,
) -> None:
    """Attack: the job's start (the starting worker's clock) against ``rotated_at`` (the
    clock of the node that made each key). Started on a worker a minute behind, the job
    selected ``rotated_at < start``: nobody, and every session lived on, though the dry
    run counted them. The run now selects what the dry run counts."""
    tokens = _users(services, "ann", "bob")
    preview = services.store.preview_batches(Cohort(role="user")).count
    behind = RevocationJobs(services.engine, services.store, lambda: _now() - timedelta(minutes=1))
    job = behind.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=1)
    assert job.total == preview == 2
    done = _ended(behind, job.id)
    assert (done.state, done.revoked, done.batches) == ("done", 2, 2)
    assert all(_revoked(services, t) for t in tokens)


class _FailsAfterOne:
    """The real store; a job's second batch fails (the database went away mid-job)."""

    def __init__(self, store: Any) -> None:
        self._store, self.first = store, ()

    def preview_batches(self, cohort: Cohort) -> RevocationResult:
        return self._store.preview_batches(cohort)  # type: ignore[no-any-return]

    def revoke_batches(self, cohort: Cohort, **options: Any) -> Iterator[RevocationResult]:
        batches = self._store.revoke_batches(cohort, **options)
        result = next(batches)
        self.first = result.user_ids
        yield result
        raise BackendError("secret store unavailable")


def test_a_resume_revokes_the_users_left_whatever_their_rotated_at_says(
    services: Services,
) -> None:
    """Attack: a resume selected ``rotated_before=<job start>``. The users left after batch
    1 of 3 have keys from a node whose clock runs an hour ahead (their ``rotated_at`` is
    after the start): that resume skipped them and said done, nobody revoked. Now a resume
    starts after the keyset position batch 1 recorded in its transaction: it revokes
    exactly the two left, and the batch-1 user, who signed in again, keeps that session."""
    tokens = dict(zip(("ann", "bob", "cid"), _users(services, "ann", "bob", "cid"), strict=True))
    ids = {name: principal(services, t).user.id for name, t in tokens.items()}
    failing = _FailsAfterOne(services.store)
    jobs = RevocationJobs(services.engine, failing, _now)  # type: ignore[arg-type]
    job = jobs.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=1)
    assert _ended(jobs, job.id).state == "failed"
    (first,) = [name for name in ids if (ids[name],) == failing.first]
    left = [name for name in ids if name != first]
    users = sa.table("sjti_users", sa.column("id"), sa.column("token_rotated_at"))
    with services.engine.begin() as conn:  # keys a fast-clock node made
        ahead = sa.update(users).where(users.c.id.in_([ids[n] for n in left]))
        conn.execute(ahead.values(token_rotated_at=_now() + timedelta(hours=1)))
    failed = job_rows.get(services.engine, job.id)
    assert failed is not None
    again = password_grant(services, first)
    RevocationJobs(services.engine, services.store, _now).resume(job.id, actor="admin:y")
    done = _ended(jobs, job.id)
    assert (done.state, done.batches, done.revoked) == ("done", 3, 3)
    assert all(_revoked(services, tokens[name]) for name in left)
    assert not _revoked(services, again)
    trail = services.store.audit_log(limit=10)
    revoked = [r.count for r in trail if r.kind == "cohort" and r.actor == "admin:y"]
    assert revoked == [1, 1]
    assert json.loads(failed.get("resume_after")) == ids[first]  # the plan's position, typed


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
def test_a_refused_resume_keeps_the_running_jobs_slot(services: Services) -> None:
    """Attack: ``POST .../resume`` of a job this worker runs (409) released the job's slot
    and dropped it from the lease renewals: MAX_RUNNING more jobs started (the bound on
    threads gone, one refused resume per slot), and the running job went 'interrupted'."""
    _users(services, "ann", "bob")
    gated = _Gated(services.store)
    jobs = RevocationJobs(services.engine, gated, _now)  # type: ignore[arg-type]
    try:
        first = jobs.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=1)
        with pytest.raises(NotResumableError):
            jobs.resume(first.id, actor="admin:y")
        more = [
            jobs.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=1)
            for _ in range(MAX_RUNNING - 1)
        ]
        with pytest.raises(TooManyJobsError):
            jobs.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=1)
    finally:
        gated.gate.set()
    assert all(_ended(jobs, job.id).state == "done" for job in [first, *more])


def test_a_resume_racing_the_live_run_never_lets_both_commit(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the run's lease lapses while it lives (its renewals fail; a stall past
    LEASE) and the job shows 'interrupted'. A resume on the *same* worker passed the
    lease check (the owner is the worker) and two runs committed batches for one job;
    now it is refused. A resume on another worker takes it over: the stalled run's next
    batch rolls back, the counters match the audit rows, and a user who signed in again
    after the new owner's batch keeps that session."""

    def renewals_fail(*_: Any) -> None:
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))

    monkeypatch.setattr(job_rows, "heartbeat", renewals_fail)
    _users(services, "ann", "bob", "cid")
    gated = _Gated(services.store)
    stalled = RevocationJobs(services.engine, gated, _now)  # type: ignore[arg-type]
    job = stalled.start(Cohort(role="user"), actor="admin:x", reason="incident", batch_size=1)
    while (seen := stalled.get(job.id)) is not None and seen.batches < 1:
        time.sleep(0.01)
    with services.engine.begin() as conn:  # the lease ran out while the run stalled
        table = sa.table("sjti_revocation_jobs", sa.column("heartbeat_at"))
        conn.execute(sa.update(table).values(heartbeat_at=_now() - timedelta(minutes=1)))
    seen = stalled.get(job.id)
    assert seen is not None
    assert seen.state == "interrupted"
    try:
        with pytest.raises(NotResumableError):
            stalled.resume(job.id, actor="admin:y")
        other = RevocationJobs(services.engine, services.store, _now)
        other.resume(job.id, actor="admin:y")
        done = _ended(other, job.id)
        again = [password_grant(services, name) for name in ("bob", "cid")]
    finally:
        gated.gate.set()
    deadline = time.monotonic() + 20
    while any(t.name == f"sjti-job-{job.id}" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the stalled run did not end"
        time.sleep(0.01)
    assert other.get(job.id) == done  # the stalled run's batch rolled back, wrote nothing
    assert (done.state, done.batches, done.revoked, done.worker) == (
        "done",
        3,
        3,
        other.owner,
    )
    trail = services.store.audit_log(limit=10)
    assert [r.actor for r in trail if r.kind == "cohort"] == ["admin:y", "admin:y", "admin:x"]
    assert not any(_revoked(services, t) for t in again)


def test_an_admin_whose_role_was_removed_can_neither_start_see_nor_resume(
    tmp_path: Path,
) -> None:
    """Attack: an admin's still-valid access token after the role was taken away. Every
    job endpoint reads the role from the user row of this request: 403 on each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/demoted.db", key_file=str(tmp_path / "keys.json")
    )
    with TestClient(service.create_app(settings)) as client:
        made = client.post("/users", json={"username": "root", "password": PASSWORD})
        assert made.status_code == 201, made.text
        engine = client.app.state.services.engine  # type: ignore[attr-defined]
        found = get_by_name(engine, "root")
        assert found is not None
        set_role(engine, found.user.id, "admin")
        grant = {"grant_type": "password", "username": "root", "password": PASSWORD}
        token = client.post("/token", data=grant).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        started = client.post(
            "/admin/revocation-jobs", json={"cohort": {"role": "nobody"}}, headers=admin
        )
        assert started.status_code == 202, started.text
        job = started.headers["Location"]
        set_role(engine, found.user.id, "user")
        calls: list[Callable[[], Any]] = [
            lambda: client.post(
                "/admin/revocation-jobs", json={"cohort": {"role": "x"}}, headers=admin
            ),
            lambda: client.get("/admin/revocation-jobs", headers=admin),
            lambda: client.get(job, headers=admin),
            lambda: client.post(f"{job}/resume", headers=admin),
        ]
        for call in calls:
            answer = call()
            assert (answer.status_code, answer.json()["code"]) == (403, "insufficient_scope")


@pytest.mark.parametrize("services", ["postgres"], indirect=True)
def test_refresh_racing_a_job_batch_never_outlives_it(services: Services) -> None:
    """The refresh-race invariant on the job path (held): a refresh of a user whose batch
    commits meanwhile, paused before each of its statements in turn, yields nothing that
    works once the job is done. PostgreSQL, where the two really interleave on row locks
    (SQLite serialises the writers; the one-request cohort race covers that ``also``)."""
    jobs = RevocationJobs(services.engine, services.store, _now)

    def setup(n: int) -> tuple[Callable[[], dict[str, Any]], Callable[[], object]]:
        _, tokens = register_and_login(services, f"race-{n}")
        principal(services, tokens)

        def revoke() -> object:
            job = jobs.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=1)
            ended = _ended(jobs, job.id)
            assert ended.state == "done", ended
            return ended

        return lambda: refresh_grant(services, tokens["refresh_token"]), revoke

    assert len(rounds(services, setup)) >= 4
