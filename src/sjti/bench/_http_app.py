"""One server for the HTTP bench, started through ``sjti serve``'s own launcher.

``python -m sjti.bench._http_app --no-auth``: the reference app with the bearer dependency
of ``/me`` swapped for a plain load of one user's row (SJTI_BENCH_USER_ID) through the
same read and the same worker-thread hop, so it differs from the shipped ``/me`` only by
the token checks (both layers).
``python -m sjti.bench._http_app --peer``: the fastapi-users peer (:mod:`._http_peer`).
Host, port and workers come from ``SJTI_*`` like ``sjti serve``, and the log level is
``sjti serve``'s (uvicorn's default, ``info``: an access-log line per request), so every
server pays for the same logging; every worker builds its app from the same variables.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, FastAPI

from ..server.app import create_app
from ..server.auth import Principal, current_principal, get_services
from ..server.run import SERVE_LOG_LEVEL, run_app
from ..server.services import Services
from ..server.settings import Settings
from ..server.users import user_from_row

__all__ = ["main", "no_auth_app"]

_FACTORIES = {
    "--no-auth": "sjti.bench._http_app:no_auth_app",
    "--peer": "sjti.bench._http_peer:app_from_env",
}


def no_auth_app() -> FastAPI:
    """The reference app whose ``/me`` loads SJTI_BENCH_USER_ID's row, no token checks."""
    app = create_app(Settings.load())
    user_id = os.environ["SJTI_BENCH_USER_ID"]

    async def row_only(services: Annotated[Services, Depends(get_services)]) -> Principal:
        row = await anyio.to_thread.run_sync(services.user_rows.with_key, user_id)
        if row is None:  # pragma: no cover - the bench registers the user first
            raise RuntimeError("bench user missing")
        return Principal({"sub": user_id}, user_from_row(row))

    app.dependency_overrides[current_principal] = row_only
    return app


def main(argv: list[str]) -> int:
    (flag,) = argv
    settings = Settings.load()
    run_app(
        _FACTORIES[flag],
        host="127.0.0.1",
        port=settings.port,
        workers=settings.workers,
        log_level=SERVE_LOG_LEVEL,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
