"""What a benchmark round costs with nothing in it: the floor under every figure.

The kernel benchmarks time one call per round (``pedantic``, ``iterations=1``,
with an untimed setup), so each figure also holds the two clock reads around the
call and pytest-benchmark's own call of the function. At batch 64 or 4096 that is
noise; at batch 1 it is a good part of the compiled kernel's figure. This times
the same harness around a call that does nothing with a one-job batch, so the
work a batch-1 call does can be told apart from what measuring it costs.
"""

from __future__ import annotations

from typing import Any


def nothing(jobs: list[int]) -> None:
    return None


def test_floor(benchmark: Any) -> None:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ([7],), {}

    benchmark.extra_info["jobs"] = 1
    benchmark.pedantic(nothing, setup=setup, rounds=2000, iterations=1)
