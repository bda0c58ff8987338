"""Compiled kernels called again from inside a call: memory safe and consistent.

Reading an argument can run Python code (an iterator, ``__index__``, ``__hash__``),
and that code may call the same kernel again. The twins are the specification
for what the engine sends (plain ints, where no such code runs); for this the
compiled kernels must still never read freed memory, reuse a token, or leave
their tables inconsistent. Each case below once did (found in review).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.differential.pair import both

leases, _ = both("lease_table")
dags, _ = both("dag_index")
buckets, _ = both("token_buckets")


def test_a_grant_nested_in_a_grant_takes_other_tokens_and_both_expire() -> None:
    table = leases.LeaseTable()

    class Job:
        def __index__(self) -> int:
            table.grant_many([10], 7, 100)  # while the outer grant reads its first job
            return 1

    tokens = table.grant_many([Job(), 2, 3], 5, 50)
    assert len(set(tokens) | {table.token_of(10)}) == 4  # no token given twice
    assert sorted(table.pop_expired(1_000, 100)[::2]) == [1, 2, 3, 10]  # every lease expires
    assert len(table) == 0


def test_a_refused_grant_around_a_refused_nested_grant_leaves_nothing() -> None:
    table = leases.LeaseTable()

    class Job:
        def __index__(self) -> int:
            with pytest.raises(ValueError):
                table.grant_many([10, 10], 7, 100)
            return 1

    with pytest.raises(ValueError):
        table.grant_many([Job(), 2, 3, 2], 5, 50)  # job 2 twice
    assert len(table) == 0 and table.pop_expired(1_000, 100) == []
    assert table.grant_many([1, 2], 5, 50) == [1, 2]  # refused batches used no token


def test_a_completion_nested_in_a_completion_releases_a_child_once_both_parents_are_done() -> None:
    dag = dags.DagIndex()
    dag.add(1, [])
    dag.add(2, [])
    dag.add(3, [1, 2])
    inner: list[list[int]] = []

    class Jobs(list[int]):
        def __iter__(self) -> Iterator[int]:
            yield 1
            inner.append(dag.complete_many([2]))

    outer = dag.complete_many(Jobs([1]))
    assert (dag.state(1), dag.state(2)) == (2, 2)  # both DONE
    assert dag.state(3) == 1 and dag.unmet(3) == 0  # READY once, and only now
    assert inner + [outer] == [[], [3]]


def test_buckets_added_while_now_is_read_leave_the_bucket_taken_from_intact() -> None:
    tb = buckets.TokenBuckets()
    tb.configure(1, 1000, 5, 0)  # 5 tokens

    class Now:
        """A ``now`` that is no int: reading it runs Python code."""

        def __index__(self) -> int:
            for key in range(2, 2_000):  # the table grows: every bucket may move
                tb.configure(key, 1000, 1, 0)
            return 0

        __int__ = __index__

    assert tb.take(1, 3, Now()) == (3, 0)
    assert tb.state(1, 0)[3] == 2  # the 3 taken came off bucket 1, not freed memory
