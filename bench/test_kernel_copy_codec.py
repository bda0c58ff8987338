"""Microbenchmarks of the COPY codec: compiled against its twin.

``history`` encodes a drain's history rows (a claim and its success in one row,
as the journal writes them) as binary COPY data. ``extra_info["jobs"]`` is the
batch size, for per-job cost.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker._native import native, twin
from broker.states import SUCCEEDED, TERMINAL
from broker.store.rows import HistoryRow

BATCHES = [1, 64, 4096]
ROUNDS = {1: 2000, 64: 500, 4096: 30}
AT = 1_764_259_200_000


def rows(batch: int) -> list[HistoryRow]:
    return [
        HistoryRow(i, AT, SUCCEEDED, 1, 0, 0, None, 0, 7 + i, "succeeded", 7 + i, "worker-1",
                   AT - 5, AT + 30_000, AT, "succeeded", None, None, None)
        for i in range(batch)
    ]  # fmt: skip


@pytest.mark.parametrize("impl", ["native", "twin"])
@pytest.mark.parametrize("batch", BATCHES)
def test_history(benchmark: Any, impl: str, batch: int) -> None:
    codec = (native if impl == "native" else twin)("copy_codec").CopyCodec()
    benchmark.extra_info["jobs"] = batch
    args = (rows(batch), 0, TERMINAL)
    data, revived = benchmark.pedantic(codec.history, args, rounds=ROUNDS[batch], iterations=1)
    assert revived == [] and len(data) > 21 * batch
