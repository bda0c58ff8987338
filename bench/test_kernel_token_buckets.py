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


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_refund(benchmark: Any, impl: str, batch: int) -> None:
    traffic = Traffic(impl, batch)
    refund = traffic.buckets.refund

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return traffic.next(), {}

    def one() -> tuple[tuple[Any, ...], dict[str, Any]]:
        (key,), now = traffic.next()
        return (key, 1, now), {}

    def fn(keys: list[int], now: int) -> None:
        for key in keys:
            refund(key, 1, now)

    if batch == 1:  # one key is one call: timed alone, without a loop around it
        run(benchmark, batch, "refund", refund, one)
    else:
        run(benchmark, batch, "refund", fn, setup)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_penalise(benchmark: Any, impl: str, batch: int) -> None:
    traffic = Traffic(impl, batch)
    penalise = traffic.buckets.penalise

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return traffic.next(), {}

    def one() -> tuple[tuple[Any, ...], dict[str, Any]]:
        (key,), now = traffic.next()
        return (key, now, 50), {}

    def fn(keys: list[int], now: int) -> None:
        for key in keys:
            penalise(key, now, 50)

    if batch == 1:  # one key is one call: timed alone, without a loop around it
        run(benchmark, batch, "penalise", penalise, one)
    else:
        run(benchmark, batch, "penalise", fn, setup)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_reward(benchmark: Any, impl: str, batch: int) -> None:
    traffic = Traffic(impl, batch)
    reward = traffic.buckets.reward

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return traffic.next(), {}

    def one() -> tuple[tuple[Any, ...], dict[str, Any]]:
        (key,), now = traffic.next()
        return (key, 3, now), {}

    def fn(keys: list[int], now: int) -> None:
        for key in keys:
            reward(key, 3, now)

    if batch == 1:  # one key is one call: timed alone, without a loop around it
        run(benchmark, batch, "reward", reward, one)
    else:
        run(benchmark, batch, "reward", fn, setup)
