"""Microbenchmarks of the timer index: the compiled kernel against its twin.

Each benchmark runs one batch operation on an index holding 100,000 timers
and keeps the index at that size from round to round (what a round adds, the
untimed setup of the next round takes away, and the other way round), so
rounds are comparable. ``extra_info["jobs"]`` is the batch size, for per-job
cost.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from broker._native import native, twin

SIZE = 100_000
BATCHES = [1, 64, 4096]
ROUNDS = {1: 2000, 64: 500, 4096: 30}
# Resident timers are due in [RESIDENT, 2 * RESIDENT); nothing is due before.
RESIDENT = 1_000_000

impls = pytest.mark.parametrize("impl", ["native", "twin"])
batches = pytest.mark.parametrize("batch", BATCHES)


def filled(impl: str) -> Any:
    """An index of SIZE timers (jobs 0..SIZE-1) with random due times."""
    kernel = native("timer_index") if impl == "native" else twin("timer_index")
    index = kernel.TimerIndex()
    rng = random.Random(impl)
    index.add_many(list(range(SIZE)), [RESIDENT + rng.randrange(RESIDENT) for _ in range(SIZE)])
    return index


@impls
@batches
def test_add_many(benchmark: Any, impl: str, batch: int) -> None:
    index = filled(impl)
    rng = random.Random(batch)
    jobs = list(range(SIZE, SIZE + batch))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for job in jobs:  # remove what the previous round added
            index.remove(job)
        # retry backoffs: due times among the residents'
        return (jobs, [RESIDENT + rng.randrange(RESIDENT) for _ in jobs]), {}

    benchmark.extra_info["jobs"] = batch
    benchmark.pedantic(index.add_many, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert len(index) == SIZE + batch


@impls
@batches
def test_pop_due(benchmark: Any, impl: str, batch: int) -> None:
    index = filled(impl)
    rng = random.Random(batch)
    jobs = list(range(SIZE, SIZE + batch))
    now = RESIDENT // 2

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        # add ``batch`` timers due by ``now``, ahead of the residents
        index.add_many(jobs, [rng.randrange(now) for _ in jobs])
        return (now,), {}

    benchmark.extra_info["jobs"] = batch
    result = benchmark.pedantic(index.pop_due, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert len(result) == batch and len(index) == SIZE
