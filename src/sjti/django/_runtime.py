"""The per-process sjti wiring of a Django project, built lazily and rebuilt after a fork.

``sjti.configure()`` makes the parts (keys, ``SqlSecretStore`` over the Django table
through the ``AppUsersTable`` layout, cache, bus) the first time a request, a command or
a signal needs them, in the process that needs them:

* not in ``AppConfig.ready()``: Django forbids queries there, and gunicorn's
  ``--preload`` would fork a master's bus threads and pooled connections into workers;
* a fork (gunicorn, uWSGI, multiprocessing) makes the child drop the parent's parts
  without closing them (``os.register_at_fork``; the pid is checked too) and build its
  own: own connections, own bus thread, own cache;
* the bus starts on first use in each process (``request_started`` calls
  :func:`runtime`), so runserver's reloader parent never starts one.

The engine's URL is read from ``connections[alias].settings_dict`` at build time, so a
test runner's renamed test database is the one sjti uses.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings as django_settings
from django.db import connections

from .._configure import Auth, configure
from ..errors import ConfigurationError
from ..settings import Settings
from . import conf

if TYPE_CHECKING:
    from sqlalchemy import Table

    from ..stores.sql import AppUsersTable, SqlSecretStore

__all__ = ["Runtime", "reset", "runtime", "settings"]

logger = logging.getLogger("sjti.django")


@dataclass(eq=False)
class Runtime:
    """What one process uses: the wired :class:`~sjti.Auth` and the tables it writes."""

    auth: Auth
    options: conf.DjangoOptions
    layout: AppUsersTable
    families: Table
    pid: int = field(default_factory=os.getpid)
    _bus_started: bool = False

    @property
    def store(self) -> SqlSecretStore:
        from ..stores.sql import SqlSecretStore

        store = self.auth.store
        if not isinstance(store, SqlSecretStore):  # pragma: no cover - configure() makes SQL
            raise ConfigurationError("sjti.django needs a SQL database")
        return store

    def start_bus(self) -> None:
        if self._bus_started or self.auth.bus is None:
            return
        self._bus_started = True
        self.auth.bus.start()

    def close(self) -> None:
        self.auth.close()


_lock = threading.Lock()
_current: Runtime | None = None


def settings() -> tuple[Settings, conf.DjangoOptions]:
    """``settings.SJTI`` validated (raises :class:`~sjti.ConfigurationError`)."""
    raw = getattr(django_settings, "SJTI", {})
    _, options = conf.split(raw)
    database = connections[options.database_alias].settings_dict
    return conf.load(raw, database)


def runtime() -> Runtime:
    """This process's parts, built on first use (and again in a forked child)."""
    global _current
    current = _current
    if current is not None and current.pid == os.getpid():
        current.start_bus()
        return current
    with _lock:
        current = _current
        if current is not None and current.pid != os.getpid():
            _forget_inherited(current)
            current = None
        if current is None:
            current = _current = _build()
    current.start_bus()
    return current


def reset() -> None:
    """Close and forget this process's parts (tests, or after changing ``settings.SJTI``)."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None and current.pid == os.getpid():
        current.close()


def _forget_inherited(inherited: Runtime) -> None:
    """In a forked child: the parent's pooled connections must not be used nor closed
    here (SQLAlchemy's rule), and its bus threads do not exist in this process."""
    engine = inherited.auth.engine
    if engine is not None:
        engine.dispose(close=False)


def _after_fork_in_child() -> None:
    global _current
    inherited = _current
    _current = None
    if inherited is not None:
        _forget_inherited(inherited)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _build() -> Runtime:
    from . import _tables

    sjti_settings, options = settings()
    layout = _tables.layout(options)
    auth = configure(sjti_settings, layout=layout, migrate=False, start_bus=False)
    logger.debug("sjti wired for process %s (%s)", os.getpid(), options.secrets)
    return Runtime(auth, options, layout, _tables.families_table())
