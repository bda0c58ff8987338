"""Microbenchmarks of the token buckets: the compiled kernel against its twin.

10,000 configured keys, a quarter of them slow enough to run dry (so ``take``
also computes waits); every round moves the clock on by one millisecond and
works on the next window of ``batch`` keys, so rounds are alike.
"""

from __future__ import annotations

import itertools
import random
from types import ModuleType
from typing import Any

import pytest

from broker._native import native, twin

BATCHES = [1, 64, 4096]
IMPLS = ["native", "twin"]
ROUNDS = {1: 2000, 64: 500, 4096: 40}
KEYS = 10_000


def load(impl: str) -> ModuleType:
    return (native if impl == "native" else twin)("token_buckets")


class Traffic:
    """Buckets over 10,000 keys, a clock, and windows of keys in a fixed random order."""

    def __init__(self, impl: str, batch: int) -> None:
        self.buckets = load(impl).TokenBuckets()
        rng = random.Random(5)
        for key in range(KEYS):
            slow = key % 4 == 0
            self.buckets.configure(key, 1000 if slow else 10**9, 1 if slow else 10**6, 0)
        order = list(range(KEYS))
        rng.shuffle(order)
        self.windows = itertools.cycle(
            [order[i : i + batch] for i in range(0, KEYS - batch + 1, batch)]
        )
        self.clock = itertools.count(1)

    def next(self) -> tuple[list[int], int]:
        return next(self.windows), next(self.clock)


def run(benchmark: Any, batch: int, op: str, fn: Any, setup: Any) -> None:
    benchmark.group = f"token_buckets.{op}[{batch}]"
    benchmark.extra_info["jobs"] = batch
    benchmark.pedantic(fn, setup=setup, rounds=ROUNDS[batch], iterations=1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_take_many(benchmark: Any, impl: str, batch: int) -> None:
    traffic = Traffic(impl, batch)
    ones = [1] * batch

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        keys, now = traffic.next()
        return (keys, ones, now), {}

    run(benchmark, batch, "take_many", traffic.buckets.take_many, setup)


def run_per_key(
    benchmark: Any, impl: str, batch: int, op: str, constant: int, now_last: bool
) -> None:
    """``op(key, constant, now)`` (or ``op(key, now, constant)``) for every key of a
    window: at batch 1 the one call is timed alone, without a loop around it."""
    traffic = Traffic(impl, batch)
    call = getattr(traffic.buckets, op)

    def one() -> tuple[tuple[Any, ...], dict[str, Any]]:
        (key,), now = traffic.next()
        return ((key, constant, now) if now_last else (key, now, constant)), {}

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return traffic.next(), {}

    def constant_first(keys: list[int], now: int) -> None:
        for key in keys:
            call(key, constant, now)

    def now_first(keys: list[int], now: int) -> None:
        for key in keys:
            call(key, now, constant)

    if batch == 1:
        run(benchmark, batch, op, call, one)
    else:
        run(benchmark, batch, op, constant_first if now_last else now_first, setup)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_refund(benchmark: Any, impl: str, batch: int) -> None:
    run_per_key(benchmark, impl, batch, "refund", 1, now_last=True)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_penalise(benchmark: Any, impl: str, batch: int) -> None:
    run_per_key(benchmark, impl, batch, "penalise", 50, now_last=False)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_reward(benchmark: Any, impl: str, batch: int) -> None:
    run_per_key(benchmark, impl, batch, "reward", 3, now_last=True)
