"""Microbenchmarks of the job table and job record: compiled against their twins.

The table holds 100,000 jobs; a round looks up or deletes a batch of them
(deleted jobs are put back by the untimed setup of the next round).
``extra_info["jobs"]`` is the batch size, for per-job cost. The job record
is priced by making a batch of records: its point is memory (96 bytes, no GC
header, against 160 for the twin's slotted object), not speed.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from broker._native import native, twin

SIZE = 100_000
BATCHES = [1, 64, 4096]
ROUNDS = {1: 2000, 64: 500, 4096: 30}

impls = pytest.mark.parametrize("impl", ["native", "twin"])
batches = pytest.mark.parametrize("batch", BATCHES)


def kernel(impl: str, name: str) -> Any:
    return native(name) if impl == "native" else twin(name)


def filled(impl: str) -> Any:
    table = kernel(impl, "job_table").JobTable()
    for job in range(SIZE):
        table[job] = job
    return table


@impls
@batches
def test_get_many(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    rng = random.Random(batch)
    jobs = rng.sample(range(SIZE), batch)
    benchmark.extra_info["jobs"] = batch
    found = benchmark.pedantic(table.get_many, (jobs,), rounds=ROUNDS[batch], iterations=1)
    assert found == jobs


@impls
@batches
def test_pop_many(benchmark: Any, impl: str, batch: int) -> None:
    table = filled(impl)
    rng = random.Random(batch)
    jobs = rng.sample(range(SIZE), batch)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for job in jobs:
            table[job] = job
        return (jobs,), {}

    benchmark.extra_info["jobs"] = batch
    benchmark.pedantic(table.pop_many, setup=setup, rounds=ROUNDS[batch], iterations=1)
    assert len(table) == SIZE - batch


@impls
@batches
def test_make_records(benchmark: Any, impl: str, batch: int) -> None:
    job = kernel(impl, "job_record").Job

    def make() -> list[Any]:
        created = 1_700_000_000_000
        return [job(i, 1, 2, 5, 5, 30_000, created, 0, b"", None, 1) for i in range(batch)]

    benchmark.extra_info["jobs"] = batch
    assert len(benchmark.pedantic(make, rounds=ROUNDS[batch], iterations=1)) == batch
