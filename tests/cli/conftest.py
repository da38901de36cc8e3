"""Fixtures for the CLI commands: a root app wired like ``_app.py``, a store, keys, a KEK."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import MetaData, create_engine, insert
from typer.testing import CliRunner

from sjti import Kek, KekRing, SigningKey, generate_user_key
from sjti.cli._keys_cmds import keys_rotate
from sjti.cli._revoke_cmds import revoke
from sjti.cli._token_cmds import app as token_app
from sjti.stores._schema import owned_table
from sjti.stores.sql import SqlSecretStore, upgrade


def build_root() -> typer.Typer:
    """The commands registered the way ``sjti.cli._app`` registers them."""
    root = typer.Typer()
    root.add_typer(token_app, name="token")
    root.command("revoke")(revoke)
    keys = typer.Typer()
    keys.command("rotate")(keys_rotate)
    root.add_typer(keys, name="keys")
    return root


@pytest.fixture(scope="session")
def root() -> typer.Typer:
    return build_root()


@pytest.fixture
def kek_config() -> str:
    return KekRing([Kek.generate("kek-1")]).to_config()


@pytest.fixture
def runner(kek_config: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose environment holds only the KEK (no stray SJTI_* from the shell)."""
    for name in ("SJTI_DATABASE_URL", "SJTI_KEY_FILE", "SJTI_ISSUER", "SJTI_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner(env={"SJTI_KEK": kek_config})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite file store with sjti's tables in place."""
    url = f"sqlite:///{tmp_path / 'sjti.db'}"
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A key file as ``sjti keys new`` writes it (EdDSA, mode 0600)."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [SigningKey.generate("EdDSA").export_private_jwk()]}))
    path.chmod(0o600)
    return path


def store_for(db_url: str, kek_config: str) -> SqlSecretStore:
    """A store on the same database and KEK the CLI uses (dispose its engine after)."""
    return SqlSecretStore(create_engine(db_url), KekRing.from_config(kek_config))


def seed_users(db_url: str, kek_config: str, user_ids: list[str]) -> None:
    """Give many users a key in one transaction (``ensure`` one by one takes seconds)."""
    ring = KekRing.from_config(kek_config)
    table = owned_table(MetaData(), "sjti_user_secrets")
    now = datetime.now(UTC)
    rows = []
    for user_id in user_ids:
        wrapped = ring.wrap(user_id, generate_user_key())
        rows.append(
            {
                "user_id": user_id,
                "wrapped_secret": wrapped.to_str(),
                "kek_id": wrapped.kek_id,
                "version": 1,
                "rotated_at": now,
            }
        )
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    engine.dispose()
