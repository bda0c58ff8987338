"""Microbenchmarks of the lease table: the compiled kernel against its twin.

Each benchmark runs one batch operation on a table holding 100,000 leases and
keeps the table at that size from round to round (what a round adds, the
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
WORKER = 7
# Resident leases expire in [RESIDENT, 2 * RESIDENT); nothing is due before.
RESIDENT = 1_000_000

impls = pytest.mark.parametrize("impl", ["native", "twin"])
batches = pytest.mark.parametrize("batch", BATCHES)


def filled(impl: str) -> Any:
    """A table of SIZE leases (jobs 0..SIZE-1) with spread-out deadlines."""
    kernel = native("lease_table") if impl == "native" else twin("lease_table")
    table = kernel.LeaseTable()
    rng = random.Random(impl)
    for start in range(0, SIZE, 1000):
        deadline = RESIDENT + rng.randrange(RESIDENT)
        table.grant_many(list(range(start, start + 1000)), WORKER, deadline)
    return table


def sample(table: Any, batch: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """``batch`` resident jobs and their current tokens."""
    jobs = rng.sample(range(SIZE), batch)
    return jobs, [table.token_of(job) for job in jobs]


@impls
@batches
def test_grant_many(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    jobs = list(range(SIZE, SIZE + batch))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if jobs[0] in table:  # release what the previous round granted
            table.release_many(jobs, [table.token_of(job) for job in jobs])
        return (jobs, WORKER, 2 * RESIDENT), {}

    benchmark.extra_info["jobs"] = batch
    # the kernel call alone is timed: a wrapper keeping its tokens would add a
    # Python call to both sides, most of what a batch-1 round costs the compiled one
    benchmark.pedantic(table.grant_many, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert all(job in table for job in jobs) and len(table) == SIZE + batch


@impls
@batches
def test_validate_many(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    jobs, tokens = sample(table, batch, random.Random(batch))
    tokens[::4] = [token + 1 for token in tokens[::4]]  # some stale tokens

    benchmark.extra_info["jobs"] = batch
    result = benchmark(table.validate_many, jobs, tokens)
    assert len(result) == batch


@impls
@batches
def test_extend_many(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    rng = random.Random(batch)
    rounds = iter(range(ROUNDS[batch] + 1))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        # a heartbeat: a later deadline every round, as time moves on
        jobs, tokens = sample(table, batch, rng)
        return (jobs, tokens, 2 * RESIDENT + next(rounds)), {}

    benchmark.extra_info["jobs"] = batch
    result = benchmark.pedantic(table.extend_many, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert result == [True] * batch and len(table) == SIZE


@impls
@batches
def test_release_many(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    rng = random.Random(batch)
    released: list[int] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        # Leases end in no particular order: release a random sample, and
        # grant back what the previous round released.
        if released:
            table.grant_many(released, WORKER, 2 * RESIDENT)
        jobs, tokens = sample(table, batch, rng)
        released[:] = jobs
        return (jobs, tokens), {}

    benchmark.extra_info["jobs"] = batch
    result = benchmark.pedantic(table.release_many, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert result == [True] * batch and len(table) == SIZE - batch


@impls
@batches
def test_pop_expired(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    jobs = list(range(SIZE, SIZE + batch))
    now = RESIDENT // 2

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        # grant ``batch`` leases that are due at ``now``, ahead of the residents
        table.grant_many(jobs, WORKER, now - 1)
        return (now,), {}

    benchmark.extra_info["jobs"] = batch
    result = benchmark.pedantic(table.pop_expired, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert len(result) == 2 * batch and len(table) == SIZE
