"""Microbenchmarks of the ready queues kernel, compiled against its twin.

    pytest bench/test_kernel_ready_queues.py --benchmark-only

Every benchmark works on 100,000 queued jobs (two job types, random
priorities) and keeps that size steady: the untimed setup of a round puts back
what the timed call takes out, or takes out what it puts in. ``extra_info
["jobs"]`` is the batch size, so per-job cost is median / jobs.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker._native import native, twin

FILL = 100_000
TYPES = [0, 1]
BATCHES = [1, 64, 4096]
IMPLS = ["native", "twin"]


def rounds_for(batch: int) -> int:
    return {1: 2000, 64: 500, 4096: 40}[batch]


class Filled:
    """A structure with FILL jobs over ``tenants`` tenants, and fresh batches for it."""

    def __init__(self, impl: str, tenants: int) -> None:
        module = native("ready_queues") if impl == "native" else twin("ready_queues")
        self.queues: Any = module.ReadyQueues()
        self.tenants = tenants
        self.rng = random.Random(1)
        self.ids: Iterator[int] = itertools.count()
        self.push(FILL)

    def batch(self, n: int) -> list[list[int]]:
        jobs = list(itertools.islice(self.ids, n))
        rng = self.rng
        return [
            jobs,
            [rng.randrange(self.tenants) for _ in jobs],
            [rng.randrange(len(TYPES)) for _ in jobs],
            [rng.randrange(10) for _ in jobs],
        ]

    def push(self, n: int) -> list[int]:
        cols = self.batch(n)
        self.queues.push_many(*cols)
        return cols[0]


def run(
    benchmark: Any,
    batch: int,
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]],
    fn: Callable[..., Any],
) -> None:
    benchmark.extra_info["jobs"] = batch
    benchmark.pedantic(fn, setup=setup, rounds=rounds_for(batch), iterations=1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_push_many(benchmark: Any, impl: str, batch: int) -> None:
    filled = Filled(impl, tenants=1)
    queues = filled.queues

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        queues.pop_many(batch, TYPES, 0)
        return tuple(filled.batch(batch)), {}

    run(benchmark, batch, setup, queues.push_many)
    assert len(queues) == FILL


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_push_front_many(benchmark: Any, impl: str, batch: int) -> None:
    filled = Filled(impl, tenants=1)
    queues = filled.queues

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        queues.pop_many(batch, TYPES, 0)
        return tuple(filled.batch(batch)), {}

    run(benchmark, batch, setup, queues.push_front_many)
    assert len(queues) == FILL


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_pop_many_one_tenant(benchmark: Any, impl: str, batch: int) -> None:
    filled = Filled(impl, tenants=1)
    queues = filled.queues

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        filled.push(batch)
        return (batch, TYPES, 0), {}

    run(benchmark, batch, setup, queues.pop_many)
    assert len(queues) == FILL


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_pop_many_all_tenants(benchmark: Any, impl: str, batch: int) -> None:
    filled = Filled(impl, tenants=1000)
    queues = filled.queues

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        filled.push(batch)
        return (batch, TYPES), {}

    run(benchmark, batch, setup, queues.pop_many)
    assert len(queues) == FILL


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_remove_many(benchmark: Any, impl: str, batch: int) -> None:
    """Cancel random queued jobs (lazily: their lane entries go stale)."""
    filled = Filled(impl, tenants=1000)
    queues = filled.queues
    live = list(range(FILL))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        victims = []
        for _ in range(batch):
            i = filled.rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            victims.append(live.pop())
        live.extend(filled.push(batch))
        return (victims,), {}

    run(benchmark, batch, setup, queues.remove_many)
    assert len(queues) == FILL
