"""The examples, built from sjti.testing's fixtures, refuse every attack of the pack: the
kit proves itself on the code users copy."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sjti
from sjti.testing import AttackCase

from .test_fastapi import TestClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"sjti_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fastapi_example() -> ModuleType:
    return example("fastapi_app")


@pytest.fixture(scope="module")
def flask_example() -> ModuleType:
    return example("flask_app")


def test_fastapi_example_me_refuses_the_attack(
    sjti_attack: AttackCase, sjti_auth: sjti.Auth, fastapi_example: ModuleType
) -> None:
    client = TestClient(fastapi_example.create_app(sjti_auth))
    sjti_attack.check(lambda token: client.get("/me", headers=bearer(token)))


@pytest.mark.sjti_attacks(layer="boundary")
def test_fastapi_example_boundary_route_refuses_forgeries(
    sjti_attack: AttackCase, sjti_auth: sjti.Auth, fastapi_example: ModuleType
) -> None:
    """/hello sits behind the middleware only: the application-key cases, no more."""
    client = TestClient(fastapi_example.create_app(sjti_auth))
    sjti_attack.check(lambda token: client.get("/hello", headers=bearer(token)))


def test_flask_example_me_refuses_the_attack(
    sjti_attack: AttackCase, sjti_auth: sjti.Auth, flask_example: ModuleType
) -> None:
    client: Any = flask_example.create_app(sjti_auth).test_client()
    sjti_attack.check(lambda token: client.get("/me", headers=bearer(token)))
