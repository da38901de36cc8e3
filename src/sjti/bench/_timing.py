"""Interleaved timing: calibrate each case to a batch of about ``target_ns``, then run
every case once per round, in a fresh random order each round, with the collector off.

A slow spell on a shared machine then hits one round of every case rather than all the
rounds of one case, and the median (or minimum) over rounds shrugs it off.
"""

from __future__ import annotations

import gc
import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["batch_ns", "calibrate", "measure", "no_gc"]


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect now, then keep the cyclic collector off for the block."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def batch_ns(fn: Callable[[], object], loops: int) -> int:
    """Nanoseconds for ``loops`` calls of ``fn`` (the loop itself is as cheap as Python's)."""
    counter = time.perf_counter_ns
    repeat = itertools.repeat(None, loops)
    start = counter()
    for _ in repeat:
        fn()
    return counter() - start


def calibrate(fn: Callable[[], object], target_ns: int) -> int:
    """How many calls of ``fn`` take about ``target_ns`` (at least one)."""
    loops = 1
    while True:
        elapsed = batch_ns(fn, loops)
        if elapsed >= target_ns // 5 or loops >= 1 << 30:
            break
        loops *= 10 if elapsed < target_ns // 50 else 2
    return max(1, round(loops * target_ns / max(elapsed, 1)))


def measure(
    cases: Sequence[tuple[str, Callable[[], object]]],
    *,
    rounds: int,
    target_ns: int,
    seed: int = 0,
) -> tuple[dict[str, int], dict[str, list[float]]]:
    """Loops per case and, per case, one ns/op sample for each round."""
    with no_gc():
        loops = {name: calibrate(fn, target_ns) for name, fn in cases}
    samples: dict[str, list[float]] = {name: [] for name, _ in cases}
    order = list(cases)
    shuffle = random.Random(seed).shuffle  # noqa: S311 - an ordering, not a secret
    for _ in range(rounds):
        shuffle(order)
        with no_gc():
            for name, fn in order:
                samples[name].append(batch_ns(fn, loops[name]) / loops[name])
    return loops, samples
