"""A clock that stands still: pass it as ``clock=`` to issuers, verifiers and stores."""

from __future__ import annotations

__all__ = ["FrozenClock"]


class FrozenClock:
    """A clock that stands still until told to move: pass it as ``clock=``.

    >>> clock = FrozenClock(1_800_000_000)
    >>> clock.advance(60)
    1800000060
    """

    __slots__ = ("now",)

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> int:
        self.now += seconds
        return self.now
