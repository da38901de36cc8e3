"""The admin console's incident revocation never commits a cohort above one batch in one
transaction: above the bound (made 1 here) it starts the same batched job as the API."""

from __future__ import annotations

import re
import time

import pytest
from fastapi import FastAPI

from sjti.server.routes import admin as admin_routes
from sjti.server.web import console

from .test_review_attacks import _admin, _csrf, _name, app, page, register, signed_in

__all__ = ["app"]  # the fixture, shared


def test_a_console_cohort_above_one_batch_runs_as_a_job(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "MAX_LISTED_IDS", 1)
    monkeypatch.setattr(admin_routes, "MAX_LISTED_IDS", 1)
    names = [_name("cohort") for _ in range(2)]
    victims = []
    for name in names:
        register(app, name)
        victims.append(page(app, name))
    admin = _admin(app)
    csrf = _csrf(admin.get("/admin/incident").text)
    preview = admin.post("/admin/incident/preview", data={"csrf_token": csrf, "role": "user"})
    assert 'id="impact-count">2<' in preview.text, preview.text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', preview.text))
    confirmed = admin.post(
        "/admin/incident/confirm", data={**form, "confirm": "2", "reason": "incident 9"}
    )
    assert confirmed.status_code == 200, confirmed.text
    job_id = re.search(r'id="job-id">([^<]+)<', confirmed.text)
    assert job_id is not None, confirmed.text
    jobs = app.state.revocation_jobs
    deadline = time.monotonic() + 10
    while (job := jobs.get(job_id.group(1))).state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # The job's batches are the real bound (10 000), only the console's limit was lowered.
    assert (job.state, job.batches, job.revoked, job.batch_size) == ("done", 1, 2, 10_000)
    assert job.actor.startswith("admin:")
    assert job.reason == "incident 9"
    assert not any(signed_in(v) for v in victims)
