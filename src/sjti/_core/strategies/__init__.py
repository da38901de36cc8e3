"""Revocation strategies: pure decisions, one interface, for comparison and for choice.

=========  =======================  ==========================  ==========================
name       state (fetched by)       revoke user / one token     app signing key alone
=========  =======================  ==========================  ==========================
sjti       UserKey (``sub``)        new key / not possible      mints nothing, edits nothing
epoch      epoch ms | None (sub)    epoch = now / not possible  mints for any user
denylist   bool (``jti``)           needs jti list / one entry  mints for any user
session    SessionRecord (id)       flag records / flag one     not a JWT: the key is unused
plain      None (nothing)           not possible / not possible mints for any user
=========  =======================  ==========================  ==========================

JWT strategies implement :class:`Strategy`; ``session`` issues opaque tokens and has the
closest honest interface, :class:`SessionStrategy` (see its module). Adapters fetch the
state through a port, sync or async, and call these; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, overload

from ...errors import ConfigurationError
from .base import REGISTERED_CLAIMS, Strategy, merge_stamp
from .denylist import DenylistStrategy
from .epoch import IAT_MS_CLAIM, EpochStrategy
from .plain import PlainStrategy
from .session import SessionKey, SessionRecord, SessionStrategy, SessionToken
from .sjti import SjtiStrategy

__all__ = [
    "DEFAULT_STRATEGY",
    "IAT_MS_CLAIM",
    "JWT_STRATEGIES",
    "REGISTERED_CLAIMS",
    "STRATEGIES",
    "AnyStrategy",
    "DenylistStrategy",
    "EpochStrategy",
    "PlainStrategy",
    "SessionKey",
    "SessionRecord",
    "SessionStrategy",
    "SessionToken",
    "SjtiStrategy",
    "Strategy",
    "get_strategy",
    "merge_stamp",
]

AnyStrategy = Strategy[Any] | SessionStrategy
DEFAULT_STRATEGY: Final = "sjti"

# Typed as Strategy[...] so mypy proves each class implements the protocol.
_SJTI: Final[Strategy[Any]] = SjtiStrategy()
_EPOCH: Final[Strategy[Any]] = EpochStrategy()
_DENYLIST: Final[Strategy[Any]] = DenylistStrategy()
_PLAIN: Final[Strategy[Any]] = PlainStrategy()

#: The JWT strategies by name (read-only).
JWT_STRATEGIES: Final[Mapping[str, Strategy[Any]]] = MappingProxyType(
    {s.name: s for s in (_SJTI, _EPOCH, _DENYLIST, _PLAIN)}
)
#: Every strategy by name (read-only): the JWT ones and ``session``.
STRATEGIES: Final[Mapping[str, AnyStrategy]] = MappingProxyType(
    {**JWT_STRATEGIES, SessionStrategy.name: SessionStrategy()}
)


@overload
def get_strategy(name: Literal["sjti"]) -> SjtiStrategy: ...
@overload
def get_strategy(name: Literal["epoch"]) -> EpochStrategy: ...
@overload
def get_strategy(name: Literal["denylist"]) -> DenylistStrategy: ...
@overload
def get_strategy(name: Literal["session"]) -> SessionStrategy: ...
@overload
def get_strategy(name: Literal["plain"]) -> PlainStrategy: ...
@overload
def get_strategy(name: str) -> AnyStrategy: ...
def get_strategy(name: str) -> AnyStrategy:
    """The strategy registered as ``name``; :class:`ConfigurationError` for any other."""
    strategy = STRATEGIES.get(name) if isinstance(name, str) else None
    if strategy is None:
        raise ConfigurationError(f"unknown strategy: {str(name)[:20]!r}")
    return strategy
