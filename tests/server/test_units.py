"""Settings and the key file, without a server."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sjti import ConfigurationError
from sjti._keyfile import load_key_material
from sjti.server.ratelimit import FailureLimiter
from sjti.server.settings import Settings


def test_production_refuses_to_start_without_a_kek(monkeypatch: pytest.MonkeyPatch) -> None:
    """SJTI_ENV=production without SJTI_KEK is a configuration error."""
    monkeypatch.setenv("SJTI_ENV", "production")
    monkeypatch.delenv("SJTI_KEK", raising=False)
    with pytest.raises(ConfigurationError, match="SJTI_ENV=production needs SJTI_KEK"):
        Settings.load()


def test_key_file_created_once_under_a_race(tmp_path: Path) -> None:
    """Eight concurrent first starts agree on one 0600 key file."""
    settings = Settings(key_file=str(tmp_path / "keys.json"))
    with ThreadPoolExecutor(8) as pool:
        kids = set(pool.map(lambda _: load_key_material(settings).keys.active.kid, range(8)))
    assert len(kids) == 1
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]


def test_key_file_refuses_another_algorithm(tmp_path: Path) -> None:
    """A key file made for EdDSA is not silently reused for HS256."""
    load_key_material(Settings(key_file=str(tmp_path / "k.json")))
    with pytest.raises(ConfigurationError):
        load_key_material(Settings(key_file=str(tmp_path / "k.json"), alg="HS256"))


def test_limiter_blocks_after_limit_and_recovers() -> None:
    """N failures in the window block the key until the oldest one leaves it."""
    now = [0.0]
    limiter = FailureLimiter(2, 10, clock=lambda: now[0])
    limiter.failed("u")
    assert limiter.retry_after("u") == 0
    limiter.failed("u")
    assert limiter.retry_after("u") == 10
    now[0] = 10.5
    assert limiter.retry_after("u") == 0
