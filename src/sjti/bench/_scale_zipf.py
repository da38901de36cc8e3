"""Zipf arithmetic for the hot-set rows of ``sjti bench`` (docs/scale.md), no I/O.

A Zipf(s) load over ``users`` users asks for user ``i`` (1-based rank) with probability
``i**-s / H(users, s)``. Three answers to "which share of requests hits a cache of
``size`` entries":

* :func:`ideal_hit_rate`: the exact Zipf CDF, the ``size`` most popular users held for
  ever (the best any cache can do under independent requests);
* :func:`two_gen_hit_rate`: a Che-style model of :class:`~sjti.cache.KeyCache`'s policy
  as shipped (two generations of ``size / 2``): a generation lasts the ``T`` requests
  that name ``size / 2`` distinct users, and a request hits when the same user was asked
  for within the current and the previous generation, i.e. within ``T + a`` requests,
  ``a`` uniform in ``[0, T)``;
* :func:`measured_hit_rate`: a real KeyCache driven with a sampled Zipf stream.

The model is checked against the measurement at small ``users`` and only then used at
100 million (the bench reports both and their ratio).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from typing import Final

from ..cache import KeyCache

__all__ = [
    "harmonic",
    "hot_set",
    "ideal_hit_rate",
    "measured_hit_rate",
    "smallest_size",
    "two_gen_hit_rate",
    "two_gen_size_for",
    "zipf_stream",
]

_HEAD: Final = 20_000  # ranks summed term by term; past it, Euler-Maclaurin or buckets
_GROUP_HEAD: Final = 1_000  # ranks the model keeps one by one; past it, buckets
_BUCKET: Final = 1.001  # ratio between the first ranks of two buckets
_KEY: Final = bytes(32)


@functools.cache
def _head_sums(s: float) -> tuple[float, ...]:
    """``H(n, s)`` for n = 0.._HEAD, each exact (a running float sum of 20 000 terms)."""
    total, sums = 0.0, [0.0]
    for k in range(1, _HEAD + 1):
        total += k**-s
        sums.append(total)
    return tuple(sums)


def _integral(a: float, b: float, s: float) -> float:
    """The integral of x**-s from a to b."""
    if s == 1.0:
        return math.log(b / a)
    return float((b ** (1 - s) - a ** (1 - s)) / (1 - s))


def harmonic(n: int, s: float) -> float:
    """``H(n, s) = sum(k**-s for k in 1..n)``: exact to the head, then Euler-Maclaurin
    (the error past 20 000 terms is far below a float's precision of the sum)."""
    if n <= _HEAD:
        return _head_sums(s)[max(n, 0)]
    a = _HEAD + 1
    ends = (a**-s + n**-s) / 2 + s * (a ** (-s - 1) - n ** (-s - 1)) / 12
    return _head_sums(s)[_HEAD] + _integral(a, n, s) + float(ends)


def ideal_hit_rate(size: int, users: int, s: float) -> float:
    """The exact Zipf CDF: the share of requests for the ``size`` most popular users."""
    return harmonic(min(size, users), s) / harmonic(users, s)


def hot_set(users: int, s: float, target: float) -> int:
    """The fewest most-popular users that draw ``target`` of the requests (exact)."""
    low, high = 1, users
    goal = target * harmonic(users, s)
    while low < high:
        mid = (low + high) // 2
        if harmonic(mid, s) >= goal:
            high = mid
        else:
            low = mid + 1
    return low


@functools.cache
def _groups(users: int, s: float) -> tuple[tuple[float, int], ...]:
    """``(probability, how many users)``: one group per rank up to 1 000, then geometric
    buckets whose users share the probability of their middle rank (at 100M users, the
    99% size moves by less than 1 in 10 000 against buckets five times finer)."""
    total = harmonic(users, s)
    groups = [(k**-s / total, 1) for k in range(1, min(users, _GROUP_HEAD) + 1)]
    first = _GROUP_HEAD + 1
    while first <= users:
        last = min(users, max(first, int(first * _BUCKET)))
        middle = (first + last) / 2
        groups.append((middle**-s / total, last - first + 1))
        first = last + 1
    return tuple(groups)


def _distinct(groups: Sequence[tuple[float, int]], window: float) -> float:
    """Expected distinct users named in ``window`` requests."""
    return sum(n * -math.expm1(-p * window) for p, n in groups)


def _two_gen_hits(groups: Sequence[tuple[float, int]], generation: float) -> float:
    """The model's hit rate for a generation of ``generation`` requests."""
    hits = 0.0
    for p, n in groups:
        x = p * generation
        if x < 1e-9:
            hits += n * p * x * 1.5  # the limit of the expression below as x -> 0
            continue
        in_window = -math.expm1(-x)  # referenced within one generation
        hits += n * p * (1 - math.exp(-x) * in_window / x)
    return hits


def _generation(groups: Sequence[tuple[float, int]], half: float) -> float:
    """The generation length ``T`` (requests) in which ``half`` distinct users are named."""
    low, high = 0.0, 1.0
    while _distinct(groups, high) < half:
        high *= 2
        if high > 1e30:
            return math.inf  # the half never fills: nobody is ever evicted
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _distinct(groups, mid) < half else (low, mid)
    return high


def two_gen_hit_rate(size: int, users: int, s: float) -> float:
    """The model's hit rate for a KeyCache of ``max_size=size`` under Zipf(s)."""
    groups = _groups(users, s)
    half = size // 2
    if half >= users:
        return 1.0
    return _two_gen_hits(groups, _generation(groups, half))


@functools.cache
def two_gen_size_for(users: int, s: float, target: float) -> int:
    """The model's smallest ``max_size`` reaching ``target``: the generation length that
    reaches it, then the distinct users it names, twice (two generations)."""
    groups = _groups(users, s)
    if _two_gen_hits(groups, 1e30) < target:
        return 2 * users
    low, high = 0.0, 1.0
    while _two_gen_hits(groups, high) < target:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _two_gen_hits(groups, mid) < target else (low, mid)
    return min(2 * users, 2 * math.ceil(_distinct(groups, high)))


def zipf_stream(users: int, s: float, length: int, seed: int) -> list[str]:
    """``length`` user ids ``"u<rank>"`` drawn from Zipf(s) over ``users`` users."""
    ids = [f"u{k}" for k in range(1, users + 1)]
    cumulative, total = [], 0.0
    for k in range(1, users + 1):
        total += k**-s
        cumulative.append(total)
    draw = random.Random(seed)  # noqa: S311 - a load to replay, not cryptography
    return draw.choices(ids, cum_weights=cumulative, k=length)


def measured_hit_rate(stream: Sequence[str], size: int, warm: int) -> float:
    """Drive a real KeyCache (``max_size=size``, its clock frozen: no entry ages out, so
    only eviction misses) with ``stream``; the hit rate after the first ``warm`` requests."""
    loads = [0]

    def load(user_id: str) -> bytes:
        loads[0] += 1
        return _KEY

    cache = KeyCache(max_size=size, clock=lambda: 0.0, trusted=True)
    get = cache.get_or_load
    for user_id in stream[:warm]:
        get(user_id, load)
    loads[0] = 0
    for user_id in stream[warm:]:
        get(user_id, load)
    return 1 - loads[0] / (len(stream) - warm)


def smallest_size(stream: Sequence[str], users: int, warm: int, target: float) -> int:
    """The smallest ``max_size`` (to 1% of ``users``, even) whose measured hit rate
    reaches ``target``, by bisection between 2 and 2 x ``users`` (which never evicts)."""
    step = max(2, (users // 100) & ~1)
    low, high = 1, (2 * users) // step + 1  # in steps; ``high`` always reaches the target
    while low < high:
        mid = (low + high) // 2
        if measured_hit_rate(stream, mid * step, warm) >= target:
            high = mid
        else:
            low = mid + 1
    return low * step
