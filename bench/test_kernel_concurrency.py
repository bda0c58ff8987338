"""Microbenchmarks of the concurrency counters: the compiled kernel against its twin.

10,000 keys, three in four with a limit of 8; each round uses a batch of keys
drawn with repeats. What a round acquires is released in the next round's
(untimed) setup and vice versa, so the counts stay steady.
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
    return (native if impl == "native" else twin)("concurrency")


class Load:
    """Counters over 10,000 keys and a cycle of batches of keys, drawn with repeats."""

    def __init__(self, impl: str, batch: int) -> None:
        self.counters = load(impl).ConcurrencyCounters()
        for key in range(KEYS):
            if key % 4:
                self.counters.set_limit(key, 8)
        rng = random.Random(9)
        self.batches = itertools.cycle([rng.choices(range(KEYS), k=batch) for _ in range(32)])
        self.ones = [1] * batch


def run(benchmark: Any, batch: int, op: str, fn: Any, setup: Any) -> None:
    benchmark.group = f"concurrency.{op}[{batch}]"
    benchmark.extra_info["jobs"] = batch
    benchmark.pedantic(fn, setup=setup, rounds=ROUNDS[batch], iterations=1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_acquire_many(benchmark: Any, impl: str, batch: int) -> None:
    load_ = Load(impl, batch)
    counters = load_.counters
    held: list[tuple[list[int], list[int]]] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        while held:
            counters.release_many(*held.pop())
        return (next(load_.batches), load_.ones), {}

    def fn(keys: list[int], ns: list[int]) -> None:
        held.append((keys, counters.acquire_many(keys, ns)))

    run(benchmark, batch, "acquire_many", fn, setup)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_release_many(benchmark: Any, impl: str, batch: int) -> None:
    load_ = Load(impl, batch)
    counters = load_.counters

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        keys = next(load_.batches)
        return (keys, counters.acquire_many(keys, load_.ones)), {}

    run(benchmark, batch, "release_many", counters.release_many, setup)
