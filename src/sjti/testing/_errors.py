"""What a failed attack case raises: one class per way an endpoint can fail the pack.

::

    AssertionError
    └── AttackError                 one case of the pack failed; ``attack`` names it
        ├── AttackAcceptedError         the endpoint accepted the attack token (2xx)
        ├── ControlRefusedError         the endpoint refused the good token: nothing is proven
        ├── UnexpectedStatusError       neither accepted nor refused as declared (a 500, a 404)
        └── EndpointCrashedError        ``send`` raised something other than a TokenError

They subclass :class:`AssertionError` so pytest reports them as test failures. Messages
name the attack and the HTTP status, never a token.
"""

from __future__ import annotations

__all__ = [
    "AttackAcceptedError",
    "AttackError",
    "ControlRefusedError",
    "EndpointCrashedError",
    "UnexpectedStatusError",
]


class AttackError(AssertionError):
    """A case of the attack pack failed. ``attack`` is its name, ``status`` the answer
    (``None`` when ``send`` raised)."""

    __module__ = "sjti.testing"  # reports name the public path, not the private module

    def __init__(self, attack: str, status: int | None, message: str) -> None:
        super().__init__(f"[{attack}] {message}")
        self.attack = attack
        self.status = status


class AttackAcceptedError(AttackError):
    """The endpoint accepted a token it must refuse: a security hole."""

    __module__ = "sjti.testing"


class ControlRefusedError(AttackError):
    """The endpoint refused a good token, so a refusal of the attack proves nothing."""

    __module__ = "sjti.testing"


class UnexpectedStatusError(AttackError):
    """The answer was neither a success nor one of the declared refusal statuses."""

    __module__ = "sjti.testing"


class EndpointCrashedError(AttackError):
    """``send`` raised (the endpoint crashed, or the client did): a 500 in production."""

    __module__ = "sjti.testing"
