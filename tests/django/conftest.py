"""Django for tests/django only, in a pytest of its own: ``pytest tests/django -p django``
(pyproject's addopts turn pytest-django off for the rest of the suite; tests/test_django.py
runs this directory in a child pytest, on SQLite and on PostgreSQL). Without the plugin
this directory is not collected.

SQLite by default; ``SJTI_TEST_DJANGO_PG=<database name>`` runs the same tests on
PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def _django_plugin(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("django")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without pytest-django (the suite's default) these tests run in tests/test_django.py."""
    return None if _django_plugin(config) else True


def pytest_configure(config: pytest.Config) -> None:
    if not _django_plugin(config):
        return
    os.environ.setdefault("SJTI_TEST_DJANGO_DIR", tempfile.mkdtemp(prefix="sjti-django-"))
    from django.conf import settings

    if not settings.configured:
        from . import settings as test_settings

        settings.configure(
            **{name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
        )


@pytest.fixture(autouse=True)
def _fresh_sjti() -> Iterator[None]:
    """Each test wires sjti from the settings in force (a test may change SJTI)."""
    from sjti.django import _runtime

    _runtime.reset()
    yield
    _runtime.reset()


@pytest.fixture
def sjti_settings(settings: Any) -> Callable[..., None]:
    """``sjti_settings(SECRETS="one_to_one", ...)``: change ``settings.SJTI`` for this test."""
    from sjti.django import _runtime

    def change(**values: Any) -> None:
        settings.SJTI = {**settings.SJTI, **values}
        _runtime.reset()

    return change


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    """``make_user("alice")``: a user with the password ``pw-<name>``."""

    def make(username: str, **extra: Any) -> Any:
        return django_user_model.objects.create_user(
            username=username, password=f"pw-{username}", **extra
        )

    return make


@pytest.fixture
def login(client: Any) -> Callable[[str], dict[str, str]]:
    """``login("alice")`` -> ``{"access", "refresh"}`` from ``token/``."""

    def do(username: str) -> dict[str, str]:
        response = client.post(
            "/api/auth/token/",
            {"username": username, "password": f"pw-{username}"},
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        body: dict[str, str] = response.json()
        return body

    return do


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
