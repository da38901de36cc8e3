"""The reference auth service: ``create_app(Settings.load())`` or ``sjti serve``.

Areas (one router each): users and tokens (``POST /users``, ``POST /token``), the caller
(``/me``, ``/logout``, ``/sessions``), admin revocations, OAuth (``/revoke`` RFC 7009,
``/introspect`` RFC 7662), ``/.well-known/jwks.json`` and ops (``/healthz``, ``/readyz``,
``/metrics``). Needs the ``server`` extra.
"""

from .app import app_from_env, create_app
from .run import prepare, serve
from .settings import Settings

__all__ = ["Settings", "app_from_env", "create_app", "prepare", "serve"]
