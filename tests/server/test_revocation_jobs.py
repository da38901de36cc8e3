"""Cohort revocation jobs: the admin API starts a batched revocation and shows its progress
(``/admin/revocation-jobs``), admin-only and audited per batch, on the real service; the
job's bookkeeping records a failure instead of losing it."""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from sjti.errors import BackendError
from sjti.server import app as service
from sjti.server import db, job_rows
from sjti.server.db import make_engine
from sjti.server.jobs import MAX_RUNNING, NotResumableError, RevocationJobs, TooManyJobsError
from sjti.server.routes import admin as admin_routes
from sjti.server.settings import Settings
from sjti.server.users import get_by_name, set_role
from sjti.stores.base import Cohort, RevocationResult

from .harness import ADMIN, PASSWORD, Server, bearer, login, refresh, register

VICTIMS = 5


def _poll(client: httpx.Client, url: str, admin: dict[str, str]) -> dict[str, Any]:
    """The job's progress once it stopped running (bounded wait; the job is tiny)."""
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = client.get(url, headers=bearer(admin)).json()
        if body["state"] != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_cohort_job_revokes_in_batches_and_shows_its_progress(server: Server) -> None:
    """Admin only, bad input refused; then 5 users in batches of 2: 202 with a Location,
    then done with 3 batches, 5 users, their refresh sessions, 3 consecutive events and
    3 audit rows by the admin; their tokens are refused, the admin's (not in the cohort)
    still work."""
    with server.client() as client:
        tokens = []
        for n in range(VICTIMS):
            register(client, f"job-user-{n}")
            tokens.append(login(client, f"job-user-{n}"))
        server.make_admin()
        admin = login(client, ADMIN)
        body: dict[str, Any] = {"cohort": {"role": "user"}, "reason": "incident 7"}
        _refuses_strangers_and_bad_input(client, body, user=tokens[0], admin=admin)
        body["batch_size"] = 2
        started = client.post("/admin/revocation-jobs", json=body, headers=bearer(admin))
        assert started.status_code == 202, started.text
        assert started.json()["total"] == VICTIMS
        location = started.headers["Location"]
        assert location == f"/admin/revocation-jobs/{started.json()['id']}"
        done = _poll(client, location, admin)
        assert (done["state"], done["error"]) == ("done", None)
        assert (done["batches"], done["revoked"]) == (3, VICTIMS)
        assert done["refresh_sessions_revoked"] == VICTIMS
        assert done["last_event_id"] - done["first_event_id"] == 2
        assert done["actor"] == f"admin:{ADMIN}"
        for t in tokens:
            assert client.get("/me", headers=bearer(t)).status_code == 401
            assert refresh(client, t["refresh_token"]).status_code == 400
        assert client.get("/me", headers=bearer(admin)).status_code == 200
        trail = client.get("/admin/revocations?limit=3", headers=bearer(admin)).json()
        assert [r["detail"] for r in trail] == [f"role=user (batch {n})" for n in (3, 2, 1)]
        assert {(r["actor"], r["reason"]) for r in trail} == {(f"admin:{ADMIN}", "incident 7")}
        assert trail[0]["id"] == done["last_audit_id"]
        listed = client.get("/admin/revocation-jobs", headers=bearer(admin)).json()
        assert listed[0]["id"] == done["id"]


def _refuses_strangers_and_bad_input(
    client: httpx.Client, body: dict[str, Any], *, user: dict[str, str], admin: dict[str, str]
) -> None:
    """401 without a token, 403 for a user, 422 for an empty cohort or a batch of 0 or
    above one event's list, 404 (problem+json) for an unknown job; nothing starts."""
    jobs = "/admin/revocation-jobs"
    assert client.post(jobs, json=body).status_code == 401
    assert client.post(jobs, json=body, headers=bearer(user)).status_code == 403
    assert client.get(jobs, headers=bearer(user)).status_code == 403
    bad_bodies: list[dict[str, Any]] = [
        {"cohort": {}},
        {**body, "batch_size": 0},
        {**body, "batch_size": 10_001},
    ]
    for bad in bad_bodies:
        assert client.post(jobs, json=bad, headers=bearer(admin)).status_code == 422, bad
    missing = client.get(f"{jobs}/nope", headers=bearer(admin))
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert client.get(jobs, headers=bearer(admin)).json() == []


class _FailingStore:
    """The real store, whose second batch fails (the database went away mid-job)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def preview_batches(self, cohort: Any) -> RevocationResult:
        return self._store.preview_batches(cohort)  # type: ignore[no-any-return]

    def revoke_batches(self, cohort: Any, **options: Any) -> Iterator[RevocationResult]:
        batches = self._store.revoke_batches(cohort, **options)
        yield next(batches)
        raise BackendError("secret store unavailable")


def _wait(jobs: RevocationJobs, job_id: str) -> Any:
    deadline = time.monotonic() + 10
    while (job := jobs.get(job_id)) is not None and job.state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return job


def test_a_failed_batch_ends_the_job_failed_with_what_committed_before(
    tmp_path: Path,
) -> None:
    """The store fails after one batch: the row says failed (a stable code, no message)
    and keeps the committed batch's count and event; a resume finishes the cohort."""
    with _app(tmp_path) as (client, services):
        for name in ("ann", "bob", "cid"):
            assert client.post("/users", json={"username": name, "password": PASSWORD}).is_success
            _token(client, name)  # a key and a refresh session each
        jobs = RevocationJobs(services.engine, _FailingStore(services.store), _now)
        job = jobs.start(Cohort(role="user"), actor="admin:x", reason=None, batch_size=2)
        ended = _wait(jobs, job.id)
        assert (ended.state, ended.error) == ("failed", "temporarily_unavailable")
        assert (ended.batches, ended.revoked, ended.refresh_sessions_revoked) == (1, 2, 2)
        assert ended.first_event_id == ended.last_event_id is not None
        assert ended.finished_at is not None
        healthy = RevocationJobs(services.engine, services.store, _now)
        assert healthy.get(job.id) == ended  # any worker reads it
        healthy.resume(job.id, actor="admin:y")
        finished = _wait(healthy, job.id)
        assert (finished.state, finished.batches, finished.revoked) == ("done", 2, 3)
        assert finished.actor == "admin:x"  # who started it; each batch names who ran it
        trail = services.store.audit_log(limit=2)
        assert [(r.actor, r.count) for r in trail] == [("admin:y", 1), ("admin:x", 2)]
        with pytest.raises(NotResumableError):
            healthy.resume(job.id, actor="admin:y")


def test_a_worker_runs_a_bounded_number_of_jobs_at_once(tmp_path: Path) -> None:
    """Past MAX_RUNNING running jobs, a new one is refused (TooManyJobsError)."""
    release = threading.Event()

    class Blocked(_FailingStore):
        def revoke_batches(self, cohort: Any, **options: Any) -> Iterator[RevocationResult]:
            release.wait(10)
            yield from ()

    with _app(tmp_path) as (_client, services):
        jobs = RevocationJobs(services.engine, Blocked(services.store), _now)
        started = [
            jobs.start(Cohort(role="user"), actor="a", reason=None, batch_size=1)
            for _ in range(MAX_RUNNING)
        ]
        with pytest.raises(TooManyJobsError):
            jobs.start(Cohort(role="user"), actor="a", reason=None, batch_size=1)
        release.set()
        assert all(_wait(jobs, job.id).state == "done" for job in started)


def test_the_v3_migration_adds_the_jobs_table_to_a_v2_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database the previous release made (v2) gains the jobs table, once."""
    engine = make_engine(f"sqlite:///{tmp_path}/v2.db")
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:2])
    db.migrate(engine)
    assert not sa.inspect(engine).has_table("sjti_revocation_jobs")
    monkeypatch.undo()
    db.migrate(engine)
    db.migrate(engine)  # idempotent
    assert sa.inspect(engine).has_table("sjti_revocation_jobs")
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version FROM sjti_server_schema")).scalar_one()
    assert version == len(db.MIGRATIONS)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def test_the_v4_migration_adds_resume_after_to_a_v3_database(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A v3 database with a job row gains ``resume_after`` (NULL for that row: it resumes
    from the start), once; the table then has the columns and indexes a new one has."""
    if backend == "sqlite":
        url, fresh_url = f"sqlite:///{tmp_path}/v3.db", f"sqlite:///{tmp_path}/v4.db"
    else:
        url = request.getfixturevalue("own_postgres_database")
        fresh_url = ""
    engine = make_engine(url)
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:3])
    db.migrate(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("sjti_revocation_jobs")}
    assert "resume_after" not in columns
    legacy = {c.name: 0 for c in db.revocation_jobs.columns if c.name != "resume_after"}
    legacy.update(id="old", state="failed", cohort="{}", description="role=user", actor="a")
    legacy.update(owner="w", started_at=_now(), heartbeat_at=_now(), finished_at=None)
    legacy.update(reason=None, error=None)
    with engine.begin() as conn:
        conn.execute(sa.table("sjti_revocation_jobs", *map(sa.column, legacy)).insert(), legacy)
    monkeypatch.undo()
    db.migrate(engine)
    db.migrate(engine)  # idempotent
    row = job_rows.get(engine, "old")
    assert row is not None
    assert row["resume_after"] is None
    assert job_rows.position_from_json(row["resume_after"]) is None
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version FROM sjti_server_schema")).scalar_one()
    assert version == len(db.MIGRATIONS) == 4
    migrated = _shape(engine)
    engine.dispose()
    if fresh_url:
        fresh = make_engine(fresh_url)
        db.migrate(fresh)
        assert _shape(fresh) == migrated
        fresh.dispose()


def _shape(engine: sa.Engine) -> tuple[list[tuple[str, str, bool]], list[str]]:
    inspector = sa.inspect(engine)
    columns = inspector.get_columns("sjti_revocation_jobs")
    indexes = inspector.get_indexes("sjti_revocation_jobs")
    return (
        [(c["name"], str(c["type"]), c["nullable"]) for c in columns],
        sorted(str(i["name"]) for i in indexes),
    )


def test_a_keyset_position_round_trips_with_its_type() -> None:
    """An int id and its text stay apart (a resume after ``"42"`` is not after ``42``);
    any other type is refused (TypeError rolls the batch back), never stored lossy."""
    for position in (42, "42", "a\u00e9Z_-"):
        back = job_rows.position_from_json(job_rows.position_to_json(position))
        assert (back, type(back)) == (position, type(position))
    for bad in (True, 4.2, None, b"42"):
        with pytest.raises(TypeError):
            job_rows.position_to_json(bad)


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _app(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The service in process (its users, store and tables), for the job runner."""
    with warnings.catch_warnings():  # it prefers httpx2; httpx is what this project has
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/jobs.db", key_file=str(tmp_path / "keys.json")
    )
    with TestClient(service.create_app(settings)) as client:
        yield client, client.app.state.services  # type: ignore[attr-defined]


def test_one_request_refuses_a_cohort_larger_than_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /admin/revocations holds one transaction: a cohort above one batch (made 1
    here) is 409 cohort_too_large and revokes nobody; its dry run still answers."""
    with warnings.catch_warnings():  # it prefers httpx2; httpx is what this project has
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    monkeypatch.setattr(admin_routes, "MAX_LISTED_IDS", 1)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/jobs.db", key_file=str(tmp_path / "keys.json")
    )
    with TestClient(service.create_app(settings)) as client:
        for name in ("ann", "bob", "root"):
            made = client.post("/users", json={"username": name, "password": PASSWORD})
            assert made.status_code == 201, made.text
        services = client.app.state.services  # type: ignore[attr-defined]
        found = get_by_name(services.engine, "root")
        assert found is not None
        set_role(services.engine, found.user.id, "admin")
        admin = _token(client, "root")
        ann, _ = [_token(client, name) for name in ("ann", "bob")]  # their keys made
        body = {"cohort": {"role": "user"}}
        refused = client.post("/admin/revocations", json=body, headers=admin)
        assert (refused.status_code, refused.json()["code"]) == (409, "cohort_too_large")
        assert "/admin/revocation-jobs" in refused.json()["detail"]
        assert client.get("/me", headers=ann).status_code == 200
        dry = client.post("/admin/revocations", json={**body, "dry_run": True}, headers=admin)
        assert (dry.status_code, dry.json()["count"]) == (200, 2)


def _token(client: Any, name: str) -> dict[str, str]:
    grant = {"grant_type": "password", "username": name, "password": PASSWORD}
    answer = client.post("/token", data=grant)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}
