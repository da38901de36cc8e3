"""The CLI operates a live ``sjti serve`` from the same settings, with no option repeated:
``sjti.toml`` on SQLite, ``SJTI_*`` on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sjti.cli._token_cmds import decode_unverified

from .harness import PASSWORD, Server

TOML = """\
database_url = "sqlite:///service.db"
key_file = "service-keys.json"
access_ttl = 123
"""


def me(server: Server, token: str) -> int:
    response = httpx.get(f"{server.url}/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def login(server: Server, username: str) -> str:
    response = httpx.post(
        f"{server.url}/token",
        data={"grant_type": "password", "username": username, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def operate(server: Server, username: str) -> None:
    """users create -> service login -> token verify/issue -> revoke: no option repeated."""
    created = server.cli("users", "create", username, "--password-stdin", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    served = login(server, username)
    verified = server.cli("token", "verify", served)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["iss"] == "https://auth.test"
    issued = server.cli("token", "issue", "--sub", username, "--json")
    assert issued.returncode == 0, issued.stderr
    minted = json.loads(issued.stdout)["access_token"]
    assert me(server, minted) == 200  # the service accepts what the CLI signed
    revoked = server.cli("revoke", "--user", username, "--reason", "cli settings")
    assert revoked.returncode == 0, revoked.stderr
    assert (me(server, served), me(server, minted)) == (401, 401)
    refused = server.cli("token", "verify", served)
    assert (refused.returncode, "refused by the user layer: revoked" in refused.stderr) == (
        1,
        True,
    )


@pytest.fixture(scope="module")
def toml_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("sjti-toml")
    (workdir / "sjti.toml").write_text(TOML)
    started = Server(workdir, {})
    yield started
    started.stop()


def test_service_and_cli_read_one_sjti_toml(toml_server: Server) -> None:
    operate(toml_server, "toml-ivy")
    assert (toml_server.workdir / "service.db").exists()
    assert (toml_server.workdir / "service-keys.json").exists()
    assert not (toml_server.workdir / "sjti.db").exists()


def test_the_service_applies_the_files_values(toml_server: Server) -> None:
    created = toml_server.cli("users", "create", "toml-jo", "--password-stdin", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    _, claims = decode_unverified(login(toml_server, "toml-jo"))
    assert claims["exp"] - claims["iat"] == 123


def test_config_show_names_each_source(toml_server: Server) -> None:
    shown = toml_server.cli("config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["database_url"] == {"value": "sqlite:///service.db", "source": "sjti.toml"}
    assert document["issuer"] == {"value": "https://auth.test", "source": "environment"}
    assert document["poll_interval"]["source"] == "default"
    assert document["kek"]["value"] in ("(unset)", "(set, hidden)")


@pytest.mark.service
def test_cli_operates_a_postgresql_service_from_the_environment(
    tmp_path: Path, own_postgres_database: str
) -> None:
    server = Server(tmp_path, {"SJTI_DATABASE_URL": own_postgres_database})
    try:
        operate(server, "pg-kim")  # asserts each step
    finally:
        server.stop()
    # The service and every CLI call used PostgreSQL: no SQLite default file appeared.
    assert not (tmp_path / "sjti.db").exists()
    assert (tmp_path / "sjti-keys.json").exists()
