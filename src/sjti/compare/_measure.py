"""Timing and the peers (PyJWT, joserfc) decoding the very same token."""

from __future__ import annotations

import functools
import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any

from ._cells import Cell
from ._world import AUDIENCE, ISSUER

__all__ = ["peer_cells", "per_call_us"]


def per_call_us(fn: Callable[[], object], loops: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time of ``loops`` calls, in microseconds."""
    fn()  # warm up (and let a refusal surface before timing)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter_ns() - start) / loops)
    return round(statistics.median(samples) / 1e3, 2)


def _pyjwt(secret: bytes) -> Callable[[str], object]:
    jwt: Any = importlib.import_module("jwt")

    def decode(token: str) -> object:
        return jwt.decode(token, key=secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)

    return decode


def _joserfc(secret: bytes) -> Callable[[str], object]:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    key = OctKey.import_key(secret)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    )

    def decode(token: str) -> object:
        claims = jwt.decode(token, key, algorithms=["HS256"]).claims
        registry.validate(claims)
        return claims

    return decode


_PEERS: dict[str, Callable[[bytes], Callable[[str], object]]] = {
    "pyjwt": _pyjwt,
    "joserfc": _joserfc,
}


def peer_cells(token: str, secret: bytes, loops: int) -> list[Cell]:
    """Each peer's decode (signature + iss/aud/exp) of ``token``, timed like ours."""
    cells = []
    for name, build in _PEERS.items():
        try:
            decode = build(secret)
        except ImportError:
            cells.append(Cell(name, "boundary_us", "not installed"))
            continue
        claims = decode(token)  # precheck: the peer accepts our token
        if not isinstance(claims, dict) or "sub" not in claims:
            cells.append(Cell(name, "boundary_us", "refused our token"))
            continue
        us = per_call_us(functools.partial(decode, token), loops)
        cells.append(Cell(name, "boundary_us", f"{us:.1f} us (decode)", us))
    return cells
