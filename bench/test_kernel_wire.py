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


@impls
@batches
def test_encode_each(benchmark: Any, impl: str, batch: int) -> None:
    """A submission's payloads (as orjson parsed them) to their stored bytes. Every
    round's output is kept alive, as a queued job's payload is: with outputs freed
    at once the allocator recycles one buffer and a per-value dumps looks cheap,
    which it is not in a broker holding a queue (see ``Wire.encode_each``)."""
    wire, _ = modules(impl)
    values = orjson.loads(
        orjson.dumps([{"n": i, "url": "https://example.org/"} for i in range(batch)])
    )
    encode = wire.Wire().encode_each
    kept: list[list[bytes]] = []

    def encode_and_keep() -> list[bytes]:
        out = encode(values)
        kept.append(out)
        return out

    benchmark.extra_info["jobs"] = batch
    out = benchmark.pedantic(encode_and_keep, rounds=ROUNDS[batch], iterations=1)
    assert out == [orjson.dumps(v) for v in values]


@impls
@batches
def test_submitted(benchmark: Any, impl: str, batch: int) -> None:
    from broker.engine import SubmitReply
    from broker.states import NAMES

    wire, _ = modules(impl)
    replies = [SubmitReply(i, 1, False, CREATED) for i in range(batch)]
    benchmark.extra_info["jobs"] = batch
    out = benchmark.pedantic(
        wire.Wire().submitted, (replies, NAMES), rounds=ROUNDS[batch], iterations=1
    )
    assert len(orjson.loads(out)["jobs"]) == batch


@impls
@batches
def test_ack_results(benchmark: Any, impl: str, batch: int) -> None:
    from broker.engine import AckReply
    from broker.states import NAMES

    wire, _ = modules(impl)
    ids = [twin("wire").job_id(CREATED, i) for i in range(batch)]
    replies = [AckReply("accepted", 3)] * batch
    benchmark.extra_info["jobs"] = batch
    args = (ids, replies, NAMES)
    out = benchmark.pedantic(wire.Wire().ack_results, args, rounds=ROUNDS[batch], iterations=1)
    assert len(orjson.loads(out)) == batch
