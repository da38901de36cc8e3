"""A service with an admin for the page tests, and one headless Chromium for the module.

Browser tests carry the ``browser`` marker: without Chromium they skip, and with
``SJTI_REQUIRE_SERVICES=1`` (CI, which installs Chromium) that skip is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..harness import Server

CHROMIUM = os.environ.get("SJTI_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("sjti-web"), {})
    started.make_admin()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium (the distribution's) for the whole module."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each browser test saves its screenshot (SJTI_SCREENSHOTS to keep them)."""
    kept = os.environ.get("SJTI_SCREENSHOTS")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    return tmp_path_factory.mktemp("screenshots")
