"""Microbenchmarks of the wire kernel: compiled against its twin.

``claimed`` writes a batch of claimed jobs (7-byte payloads, no meta, one lease
deadline) as the claim reply's JSON array; ``plain_successes`` reads an ack's
results (as orjson hands them over) back into job numbers and tokens. Each
implementation gets job records of its own kind, as an engine on it would.
``extra_info["jobs"]`` is the batch size, for per-job cost.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from broker._native import native, twin

BATCHES = [1, 64, 4096]
ROUNDS = {1: 2000, 64: 500, 4096: 30}
CREATED = 1_764_259_200_000

impls = pytest.mark.parametrize("impl", ["native", "twin"])
batches = pytest.mark.parametrize("batch", BATCHES)


def modules(impl: str) -> tuple[Any, Any]:
    load = native if impl == "native" else twin
    return load("wire"), load("job_record")


def grant(impl: str, batch: int) -> tuple[Any, list[Any], list[int], list[int]]:
    wire, record = modules(impl)
    jobs = []
    for i in range(batch):
        job = record.Job(i, 0, 0, 5, 5, 30_000, CREATED, 0, b'{"n":1}', None, 2)
        job.attempt = 1
        jobs.append(job)
    tokens = [(1 << 40) + i for i in range(batch)]
    return wire.Wire(), jobs, tokens, [CREATED + 60_000] * batch


def ceiling(attempt: int) -> int:
    return 1_000 << (attempt - 1)


@impls
@batches
def test_claimed(benchmark: Any, impl: str, batch: int) -> None:
    wire, jobs, tokens, deadlines = grant(impl, batch)
    args = (jobs, tokens, deadlines, ["scan"], ["tenant-a"], ceiling)
    benchmark.extra_info["jobs"] = batch
    out = benchmark.pedantic(wire.claimed, args, rounds=ROUNDS[batch], iterations=1)
    assert len(orjson.loads(out)) == batch


@impls
@batches
def test_plain_successes(benchmark: Any, impl: str, batch: int) -> None:
    wire, jobs, tokens, deadlines = grant(impl, batch)
    claimed = orjson.loads(wire.claimed(jobs, tokens, deadlines, ["scan"], ["t"], ceiling))
    results = orjson.loads(
        orjson.dumps(
            [{"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"} for j in claimed]
        )
    )
    benchmark.extra_info["jobs"] = batch
    got = benchmark.pedantic(wire.plain_successes, (results,), rounds=ROUNDS[batch], iterations=1)
    assert got == (list(range(batch)), tokens)
