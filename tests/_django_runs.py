"""The two child pytest runs of tests/django (SQLite, PostgreSQL), startable early.

They are the suite's longest steps and mostly wait on their own servers, so
tests/conftest.py starts them in the background once the suite reaches tests/core (pure
CPU tests that timing does not disturb): :func:`start_early`; tests/test_django.py
collects their verdicts (:func:`take`), or runs them in the foreground when nothing
started them (``pytest tests/test_django.py`` alone).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import services

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900


@dataclass
class Child:
    """A child pytest writing to a file (no pipe to fill while nobody reads it)."""

    process: subprocess.Popen[bytes]
    output: IO[bytes]
    scratch: str | None = None  # a directory of its own, removed with it

    def verdict(self) -> str:
        try:
            code = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = -1
        self.output.seek(0)
        text = self.output.read().decode("utf-8", "replace")
        self.output.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        assert code == 0, text[-8000:]
        assert " failed" not in text
        return text


_EARLY: dict[str, Child] = {}


def _start(env: dict[str, str], *extra: str) -> Child:
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by verdict()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "pytest", "tests/django", "-p", "django", "-q",
         "-p", "no:cacheprovider", *extra],
        env=env,
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    return Child(process, output)


def sqlite_run(directory: str) -> Child:
    env = {**os.environ, "SJTI_TEST_DJANGO_DIR": directory}
    env.pop("SJTI_TEST_DJANGO_PG", None)
    return _start(env)


def postgres_run(server_url: str, directory: str) -> Child:
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    env = {
        **os.environ,
        "SJTI_TEST_DJANGO_PG": f"sjti_django_{secrets.token_hex(4)}",
        "SJTI_TEST_DJANGO_PG_USER": url.username or "postgres",
        "SJTI_TEST_DJANGO_PG_HOST": url.host or "127.0.0.1",
        "SJTI_TEST_DJANGO_PG_PORT": str(url.port or 5432),
        "SJTI_TEST_DJANGO_DIR": directory,
    }
    return _start(env, "--create-db", "--deselect", "tests/django/test_http.py")


def start_early() -> None:
    """Start both child runs now (the PostgreSQL one only if the configured server
    answers; otherwise its test starts it in the foreground with the usual fixture)."""
    if _EARLY:
        return
    scratch = tempfile.mkdtemp(prefix="sjti-django-")
    _EARLY["sqlite"] = sqlite_run(scratch)
    _EARLY["sqlite"].scratch = scratch
    url = services.configured_postgres_url()
    if services.postgres_answers(url):
        scratch = tempfile.mkdtemp(prefix="sjti-django-")
        _EARLY["postgres"] = postgres_run(url, scratch)
        _EARLY["postgres"].scratch = scratch


def stop_early() -> None:
    """End whatever child run no test collected (a failed or interrupted session)."""
    while _EARLY:
        _, child = _EARLY.popitem()
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        child.output.close()
        if child.scratch is not None:
            shutil.rmtree(child.scratch, ignore_errors=True)


def take(name: str) -> Child | None:
    """The child run started early under ``name`` (``sqlite``, ``postgres``), if any."""
    return _EARLY.pop(name, None)
