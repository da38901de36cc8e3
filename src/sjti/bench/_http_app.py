"""One server for the HTTP bench: the reference app, optionally with auth replaced.

``--no-auth`` swaps the bearer dependency of ``/me`` for a plain load of one user's row, so
the two servers differ only by the token checks (both layers) and nothing else.
Settings come from ``SJTI_*`` like ``sjti serve``; the user id from SJTI_BENCH_USER_ID.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import uvicorn
from fastapi import Depends

from ..server.app import create_app
from ..server.auth import Principal, current_principal, get_services
from ..server.services import Services
from ..server.settings import Settings
from ..server.users import get_by_id


def main(argv: list[str]) -> int:
    settings = Settings.load()
    app = create_app(settings)
    if "--no-auth" in argv:
        user_id = os.environ["SJTI_BENCH_USER_ID"]

        def row_only(services: Annotated[Services, Depends(get_services)]) -> Principal:
            user = get_by_id(services.engine, user_id)
            if user is None:  # pragma: no cover - the bench registers the user first
                raise RuntimeError("bench user missing")
            return Principal({"sub": user_id}, user)

        app.dependency_overrides[current_principal] = row_only
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
