"""The app config: system checks, signals and the lazy per-process wiring."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core.signals import request_started
from django.db.models.signals import post_migrate


class SjtiConfig(AppConfig):
    name = "sjti.django"
    label = "sjti_django"
    verbose_name = "Token revocation (sjti)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, signals

        checks.register()
        signals.connect()
        if apps.is_installed("django.contrib.admin"):
            from . import admin

            admin.attach()  # the user admin may be registered by an app listed after us
        # The parts (engine, cache, bus thread) are built on first use in each process:
        # the first request starts them after any fork (gunicorn workers), never here.
        request_started.connect(_start, dispatch_uid="sjti.django.start")
        post_migrate.connect(_migrate, sender=self, dispatch_uid="sjti.django.migrate")


def _start(**_kwargs: Any) -> None:
    from ._runtime import runtime

    runtime()


def _migrate(using: str = "default", **_kwargs: Any) -> None:
    """After Django's migrations: sjti's own tables (audit, events, nodes) and a check of
    the secret columns, by sjti's versioned, lock-protected ``upgrade``."""
    from ..stores.migrations import upgrade
    from ._runtime import runtime

    rt = runtime()
    if using != rt.options.database_alias:
        return
    upgrade(rt.store.engine, rt.layout)
