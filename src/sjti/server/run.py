"""Run the service under uvicorn (what ``sjti serve`` calls)."""

from __future__ import annotations

import os

import uvicorn

from .._engine import make_engine
from .._keyfile import load_key_material
from .db import migrate
from .settings import Settings

__all__ = ["prepare", "serve"]


def prepare(settings: Settings) -> None:
    """Create the key file and migrate once, before any worker starts (they would cope
    with racing, this just makes start-up quieter)."""
    load_key_material(settings)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Start uvicorn with ``settings.workers`` processes; every worker reads ``SJTI_*``."""
    prepare(settings)
    os.environ["SJTI_WORKERS"] = str(settings.workers)  # workers must know they share
    uvicorn.run(
        "sjti.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
        proxy_headers=False,
    )
