"""Microbenchmarks of the attempt log: compiled against its twin.

One round is what the journal does for a drained batch: the claim (``leased``),
its ack (``finished``) and the cut that turns each attempt into one history row.
``extra_info["jobs"]`` is the batch size, for per-job cost.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker._native import native, twin
from broker.states import LEASED, PENDING, SUCCEEDED
from broker.store.rows import HistoryRow

BATCHES = [1, 64, 4096]
ROUNDS = {1: 2000, 64: 500, 4096: 30}
AT = 1_764_259_200_000


def live(jid: int, state: int) -> tuple[int, int, str | None, int]:
    raise AssertionError("a drained job is neither leased nor pending")


@pytest.mark.parametrize("impl", ["native", "twin"])
@pytest.mark.parametrize("batch", BATCHES)
def test_claim_ack_cut(benchmark: Any, impl: str, batch: int) -> None:
    kernel = native if impl == "native" else twin
    log = kernel("attempt_log").AttemptLog(HistoryRow, LEASED, PENDING)
    make_job = kernel("job_record").Job
    jobs = [make_job(i + 1, 0, 0, 5, 5, 30_000, AT, 0, b"", None, SUCCEEDED) for i in range(batch)]
    tokens = list(range(1, batch + 1))
    deadlines = [AT + 30_000] * batch
    done = ["succeeded"] * batch, [SUCCEEDED] * batch, [0] * batch, [None] * batch, [None] * batch

    def claim_ack_cut() -> list[Any]:
        log.leased(AT, "worker-1", jobs, tokens, deadlines)
        log.finished(AT + 5, jobs, tokens, *done)
        return log.cut(live, {}, AT - 1_000)

    benchmark.extra_info["jobs"] = batch
    rows = benchmark.pedantic(claim_ack_cut, rounds=ROUNDS[batch], iterations=1)
    assert len(rows) == batch and rows[-1].finished == AT + 5 and len(log) == 0
