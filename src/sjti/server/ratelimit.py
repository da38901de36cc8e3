"""Failed-login limiter: in memory, **per process** (each worker counts on its own).

A key (a username, or a client IP) that failed ``limit`` times within ``window`` seconds is
refused with 429 and ``Retry-After`` until its oldest failure leaves the window. Several
workers multiply the effective limit by the number of workers; a shared limiter (Redis)
is the production answer and is not implemented here.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["FailureLimiter"]

_MAX_KEYS = 100_000  # bounded memory: the table is reset when it grows beyond this


class FailureLimiter:
    """Sliding-window failure counter per key; thread-safe."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 if it may now."""
        now = self._clock()
        with self._lock:
            recent = self._recent(key, now)
            if recent is None or len(recent) < self.limit:
                return 0
            return max(1, math.ceil(recent[0] + self.window - now))

    def failed(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= _MAX_KEYS:
                self._failures.clear()
            recent = self._recent(key, now)
            if recent is None:
                recent = self._failures[key] = deque(maxlen=self.limit)
            recent.append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent
