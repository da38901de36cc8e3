"""Cohort revocation jobs on a real ``sjti serve --workers 2`` (SQLite): the job lives in
the database, so either worker answers for it; a worker killed mid-job leaves it
``interrupted`` with what committed, and a resume on the other worker finishes it without
signing anyone out twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from sjti.server.jobs import LEASE

from .harness import ADMIN, Server, bearer, login, register

VICTIMS = 3


def _get(server: Server, path: str, admin: dict[str, str]) -> httpx.Response:
    """A new connection each time: the kernel hands it to either worker."""
    return httpx.get(f"{server.url}{path}", headers=bearer(admin), timeout=30)


def _until(server: Server, path: str, admin: dict[str, str], done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + LEASE.total_seconds() + 20
    while True:
        answer = _get(server, path, admin)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_a_job_is_seen_by_both_workers_survives_a_killed_worker_and_resumes(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path, {}, workers=2)
    try:
        with server.client() as client:
            for n in range(VICTIMS):
                register(client, f"w-{n}")
            tokens = [login(client, f"w-{n}") for n in range(VICTIMS)]
            server.make_admin()
            admin = login(client, ADMIN)
        body = {"cohort": {"role": "user"}, "batch_size": 1, "pause_ms": 60_000}
        started = httpx.post(
            f"{server.url}/admin/revocation-jobs", json=body, headers=bearer(admin), timeout=30
        )
        assert started.status_code == 202, started.text
        job = started.json()
        location, runner = started.headers["Location"], job["worker"]
        assert started.headers["Sjti-Worker"] == runner

        # Every GET finds it, whichever worker answers; both answer within the bound.
        answered: set[str] = set()
        for _ in range(200):
            seen = _get(server, location, admin)
            assert seen.status_code == 200, seen.text
            assert seen.json()["id"] == job["id"]
            answered.add(seen.headers["Sjti-Worker"])
            if len(answered) == 2:
                break
        assert len(answered) == 2, answered

        # The first batch committed (the job now pauses a minute): kill its worker.
        first = _until(server, location, admin, lambda b: b["batches"] == 1)
        assert (first["state"], first["revoked"]) == ("running", 1)
        os.kill(int(runner.split(":")[1]), signal.SIGKILL)
        lost = _until(server, location, admin, lambda b: b["state"] != "running")
        assert lost["state"] == "interrupted"
        assert (lost["batches"], lost["revoked"], lost["finished_at"]) == (1, 1, None)
        assert lost["total"] == VICTIMS
        refused = [_me(server, t) for t in tokens]
        assert sorted(refused) == [200, 200, 401]
        with server.client() as client:
            again = login(client, f"w-{refused.index(401)}")

        # Resume (a running job is refused first); the batch-1 user who signed in again
        # keeps the new session: the job selects keys made before it started.
        resumed = httpx.post(
            f"{server.url}{location}/resume", json={"pause_ms": 0}, headers=bearer(admin)
        )
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["resumed"] == 1
        twice = httpx.post(f"{server.url}{location}/resume", headers=bearer(admin))
        assert (twice.status_code, twice.json()["code"]) == (409, "conflict")
        done = _until(server, location, admin, lambda b: b["state"] != "running")
        assert (done["state"], done["error"]) == ("done", None)
        assert (done["batches"], done["revoked"]) == (VICTIMS, VICTIMS)
        assert done["worker"] != runner
        assert [_me(server, t) for t in tokens] == [401] * VICTIMS
        assert _me(server, again) == 200
        unknown = httpx.post(
            f"{server.url}/admin/revocation-jobs/nope/resume", headers=bearer(admin)
        )
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    finally:
        server.stop()


def _me(server: Server, token: dict[str, str]) -> int:
    return httpx.get(f"{server.url}/me", headers=bearer(token), timeout=30).status_code
