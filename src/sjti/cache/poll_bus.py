"""A bus without a transport: the cache is kept current by polling the event log alone.

For deployments with neither Redis nor PostgreSQL NOTIFY (several processes on one SQLite
file, say) whose operator accepts a staleness bound of ``poll_interval`` seconds on the
*other* processes (the revoking process drops the user before ``revoke`` returns). The
cache is trusted only while polls succeed: a failed or stuck poll bypasses it at once.

>>> bus = LogPollBus(cache, log=store, poll_interval=0.5).start()  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Any

from ..stores.base import RevocationEvent
from ._bus import ThreadedBus
from .keycache import KeyCache

__all__ = ["LogPollBus"]


class _NoTransport:
    """A session that only waits: pings answer at once; the poll proves currency."""

    __slots__ = ("_stop",)

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def poll(self, timeout: float) -> tuple[list[str | bytes], int]:
        self._stop.wait(timeout)
        return [], 0

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        return None


class LogPollBus(ThreadedBus):
    """Keeps a :class:`~sjti.cache.KeyCache` current from the event log only (no pub/sub)."""

    def __init__(
        self,
        cache: KeyCache,
        *,
        log: Any,
        poll_interval: float = 1.0,
        node_id: str | None = None,
    ) -> None:
        super().__init__(
            cache,
            health_check_interval=max(poll_interval, 0.5),
            reconnect_min=0.05,
            reconnect_max=2.0,
            log=log,
            poll_interval=poll_interval,
            node_id=node_id,
            name="log-poll",
        )

    def _open(self) -> _NoTransport:
        return _NoTransport(self._stop)

    def publish_event(self, event: RevocationEvent) -> int:
        return 0  # nobody to tell: every node polls
