"""Microbenchmarks of the DAG index: the compiled kernel against its twin.

Every round works on a DAG pre-filled with 100,000 jobs; the jobs a round adds
are discarded again in the next round's (untimed) setup, so the size is steady.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from broker._native import native, twin

BATCHES = [1, 64, 4096]
IMPLS = ["native", "twin"]
ROUNDS = {1: 2000, 64: 400, 4096: 40}
PREFILL = 100_000
CHAIN = 10


def load(impl: str) -> ModuleType:
    return (native if impl == "native" else twin)("dag_index")


def prefilled(mod: ModuleType) -> Any:
    """100,000 jobs in chains of ten, the first half of the chains DONE."""
    dag = mod.DagIndex()
    for job in range(PREFILL):
        dag.add(job, [job - 1] if job % CHAIN else [])
    for step in range(CHAIN):
        dag.complete_many(list(range(step, PREFILL // 2, CHAIN)))
    return dag


class Rounds:
    """Fresh job ids per round; the previous round's jobs are discarded first."""

    def __init__(self, dag: Any) -> None:
        self.dag = dag
        self.ids = itertools.count(PREFILL)
        self.added: list[int] = []

    def fresh(self, n: int) -> list[int]:
        for job in self.added:
            self.dag.discard(job)
        self.added = [next(self.ids) for _ in range(n)]
        return self.added


def run(
    benchmark: Any,
    batch: int,
    op: str,
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]],
    fn: Callable[..., Any],
) -> None:
    benchmark.group = f"dag_index.{op}[{batch}]"
    benchmark.extra_info["jobs"] = batch
    benchmark.pedantic(fn, setup=setup, rounds=ROUNDS[batch], iterations=1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_add_chain(benchmark: Any, impl: str, batch: int) -> None:
    """``batch`` adds, each job depending on the one before (the first on a DONE job)."""
    rounds = Rounds(prefilled(load(impl)))
    add = rounds.dag.add

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        jobs = rounds.fresh(batch)
        if batch == 1:
            return (jobs[0], [0]), {}
        return (jobs, [0, *jobs[:-1]]), {}

    def fn(jobs: list[int], parents: list[int]) -> None:
        for job, parent in zip(jobs, parents, strict=True):
            add(job, [parent])

    # one add is one call: timed alone, without a loop around it
    run(benchmark, batch, "add_chain", setup, add if batch == 1 else fn)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_add_fanout(benchmark: Any, impl: str, batch: int) -> None:
    """``batch`` adds, all children of one READY root and one WAITING job."""
    rounds = Rounds(prefilled(load(impl)))
    add = rounds.dag.add

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        root, *jobs = rounds.fresh(batch + 1)
        add(root, [])
        if batch == 1:
            return (jobs[0], [root, PREFILL - 1]), {}
        return (jobs, [root, PREFILL - 1]), {}

    def fn(jobs: list[int], parents: list[int]) -> None:
        for job in jobs:
            add(job, parents)

    run(benchmark, batch, "add_fanout", setup, add if batch == 1 else fn)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_complete_many(benchmark: Any, impl: str, batch: int) -> None:
    """Complete ``batch`` READY jobs, each releasing one child."""
    rounds = Rounds(prefilled(load(impl)))
    dag = rounds.dag

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        jobs = rounds.fresh(2 * batch)
        for parent, child in zip(jobs[:batch], jobs[batch:], strict=True):
            dag.add(parent, [])
            dag.add(child, [parent])
        return (jobs[:batch],), {}

    run(benchmark, batch, "complete_many", setup, dag.complete_many)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_fail(benchmark: Any, impl: str, batch: int) -> None:
    """Fail a root whose ``batch`` descendants (an 8-ary tree) become BLOCKED."""
    rounds = Rounds(prefilled(load(impl)))
    dag = rounds.dag

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        root, *jobs = rounds.fresh(batch + 1)
        dag.add(root, [])
        tree = [root, *jobs]
        for i, job in enumerate(jobs, start=1):
            dag.add(job, [tree[(i - 1) // 8]])
        return (root,), {}

    run(benchmark, batch, "fail", setup, dag.fail)
