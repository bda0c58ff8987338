"""The compiled ready queues against their pure-Python twin, step by step."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.differential.pair import ID_PATTERNS, both, id_pattern

compiled, twin_mod = both("ready_queues")

INT64_MAX = 0x7FFF_FFFF_FFFF_FFFF
TENANTS = range(-1, 4)
JTYPES = range(-1, 3)

# valid values from small ranges, so ids, queues, rings and priorities collide
# often; invalid ones come from dedicated rules, so most operations succeed
# ids from a few runs of 16 (the native table gives such a run one home and
# consecutive slots after it), so homes overlap and entries move at the first
# capacities, 16, 24 and 36
JOB_IDS = [0, 1, 2, 3, 7, 16, 17, 19, 24, 32, 35, 40, 48, 51, 64, 72]
jobs = st.sampled_from(JOB_IDS)
tenants = st.integers(0, 2)
jtypes = st.integers(0, 1)
priorities = st.integers(0, 3) | st.integers(0, 9)
rows = st.tuples(tenants, jtypes, priorities)
bad_ids = st.sampled_from([-1, -(2**70), INT64_MAX + 1])
bad_priorities = st.sampled_from([-1, 10, 2**70])


def same(native_call: Callable[[], Any], twin_call: Callable[[], Any]) -> Any:
    """Run both; they must return the same value or both raise ValueError."""
    try:
        expected = twin_call()
    except ValueError:
        with pytest.raises(ValueError):
            native_call()
        return None
    got = native_call()
    assert got == expected
    assert type(got) is type(expected)
    return got


class ReadyQueuesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native = compiled.ReadyQueues()
        self.twin = twin_mod.ReadyQueues()
        self.next_job = 100  # fresh ids; JOB_IDS are the colliding ones

    def both(self, name: str, *args: Any) -> Any:
        return same(
            lambda: getattr(self.native, name)(*args), lambda: getattr(self.twin, name)(*args)
        )

    def fresh(self, n: int) -> list[int]:
        self.next_job += n
        return list(range(self.next_job - n, self.next_job))

    @initialize(
        batch=st.lists(rows, min_size=4, max_size=30),
        front=st.lists(rows, max_size=6),
        weights=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    )
    def fill(
        self,
        batch: list[tuple[int, int, int]],
        front: list[tuple[int, int, int]],
        weights: list[int],
    ) -> None:
        """Start every run with jobs in several queues, so pops have something to order."""
        for tenant, weight in enumerate(weights):
            self.both("set_weight", tenant, weight)
        for name, part in (("push_many", batch), ("push_front_many", front)):
            cols = [self.fresh(len(part)), *([row[c] for row in part] for c in range(3))]
            self.both(name, *cols)

    @rule(job=jobs, row=rows)
    def push(self, job: int, row: tuple[int, int, int]) -> None:
        self.both("push", job, *row)

    @rule(batch=st.lists(rows, max_size=8), front=st.booleans(), reuse=st.lists(jobs, max_size=2))
    def push_batch(self, batch: list[tuple[int, int, int]], front: bool, reuse: list[int]) -> None:
        """Fresh ids, sometimes with a colliding one (queued already or repeated)."""
        ids = self.fresh(len(batch))
        for i, job in enumerate(reuse[: len(ids)]):
            ids[-1 - i] = job
        cols = [ids, *([row[c] for row in batch] for c in range(3))]
        self.both("push_front_many" if front else "push_many", *cols)

    @rule(
        k=st.integers(0, 12),
        types=st.lists(jtypes, max_size=3),
        tenant=st.none() | st.integers(-1, 2),
    )
    def pop_many(self, k: int, types: list[int], tenant: int | None) -> None:
        if tenant is None:
            self.both("pop_many", k, types)
        else:
            self.both("pop_many", k, types, tenant)

    @rule(batch=st.lists(jobs | st.integers(100, 300), min_size=1, max_size=4))
    def remove(self, batch: list[int]) -> None:
        if len(batch) == 1:
            self.both("remove", batch[0])
        else:
            self.both("remove_many", batch)

    @rule(job=jobs | st.integers(100, 300), row=rows, front=st.booleans())
    def requeue(self, job: int, row: tuple[int, int, int], front: bool) -> None:
        """Remove a job and push it again: its old lane entry goes stale."""
        self.both("remove", job)
        self.both("push_front_many" if front else "push_many", [job], *([v] for v in row))

    @rule(tenant=tenants, weight=st.integers(1, 4))
    def set_weight(self, tenant: int, weight: int) -> None:
        self.both("set_weight", tenant, weight)

    @rule(tenant=tenants, jtype=jtypes, held=st.booleans() | st.sampled_from([0, 1, None]))
    def set_held(self, tenant: int, jtype: int, held: Any) -> None:
        self.both("set_held", tenant, jtype, held)

    @rule(data=st.data(), kind=st.integers(0, 6))
    def invalid(self, data: st.DataObject, kind: int) -> None:
        """A call with one bad argument: both raise ValueError and change nothing."""
        draw = data.draw
        if kind <= 1:  # a bad value somewhere in a batch
            batch = draw(st.lists(rows, min_size=1, max_size=6))
            cols = [self.fresh(len(batch)), *([row[c] for row in batch] for c in range(3))]
            column, at = draw(st.integers(0, 3)), draw(st.integers(0, len(batch) - 1))
            cols[column][at] = draw(bad_priorities if column == 3 else bad_ids)
            self.both("push_front_many" if kind else "push_many", *cols)
        elif kind == 2:  # ragged columns
            batch = draw(st.lists(rows, min_size=1, max_size=4))
            cols = [self.fresh(len(batch)), *([row[c] for row in batch] for c in range(3))]
            column = draw(st.integers(0, 3))
            cols[column] = cols[column][:-1]
            self.both("push_many", *cols)
        elif kind == 3:
            args = draw(st.tuples(jobs | bad_ids, tenants | bad_ids, jtypes | bad_ids))
            self.both("push", *args, draw(priorities | bad_priorities))
        elif kind == 4:
            k = draw(st.sampled_from([-1, 0, 3, INT64_MAX + 5, -(2**70)]))
            types = draw(st.lists(jtypes | bad_ids, max_size=3))
            tenant = draw(st.sampled_from([-1, 0, INT64_MAX + 1, -(2**70)]))
            self.both("pop_many", k, types, tenant)
        elif kind == 5:
            tenant = draw(tenants | bad_ids)
            self.both("set_weight", tenant, draw(st.sampled_from([-1, 0, 1, 1_000_000, 1_000_001])))
        else:
            self.both("set_held", draw(tenants | bad_ids), draw(jtypes | bad_ids), True)

    @invariant()
    def membership(self) -> None:
        assert len(self.native) == len(self.twin)
        for job in [-1, *JOB_IDS, *range(100, self.next_job + 1)]:
            assert (job in self.native) == (job in self.twin)

    @invariant()
    def queues(self) -> None:
        for tenant in TENANTS:
            assert self.native.weight(tenant) == self.twin.weight(tenant)
            for jtype in JTYPES:
                assert self.native.depth(tenant, jtype) == self.twin.depth(tenant, jtype)
                assert self.native.is_held(tenant, jtype) == self.twin.is_held(tenant, jtype)


TestReadyQueues = ReadyQueuesMachine.TestCase


def test_large_random_run() -> None:
    """10,000 mixed operations on bigger batches, compared end to end."""
    rng = random.Random(7)
    native, twin = compiled.ReadyQueues(), twin_mod.ReadyQueues()
    next_job = 0
    for tenant in range(6):
        native.set_weight(tenant, tenant + 1)
        twin.set_weight(tenant, tenant + 1)
    for _ in range(10_000):
        op = rng.random()
        if op < 0.35:
            n = rng.randint(1, 40)
            cols = [
                list(range(next_job, next_job + n)),
                [rng.randrange(6) for _ in range(n)],
                [rng.randrange(3) for _ in range(n)],
                [rng.randrange(10) for _ in range(n)],
            ]
            next_job += n
            name = "push_front_many" if rng.random() < 0.2 else "push_many"
            getattr(native, name)(*cols)
            getattr(twin, name)(*cols)
        elif op < 0.5:
            victims = [rng.randrange(next_job + 1) for _ in range(rng.randint(1, 20))]
            assert native.remove_many(victims) == twin.remove_many(victims)
        elif op < 0.55:
            tenant, jtype, held = rng.randrange(6), rng.randrange(3), rng.random() < 0.5
            native.set_held(tenant, jtype, held)
            twin.set_held(tenant, jtype, held)
        else:
            k = rng.randint(0, 60)
            types = [rng.randrange(3) for _ in range(rng.randint(1, 4))]
            tenant = rng.randrange(6) if rng.random() < 0.3 else -1
            assert native.pop_many(k, types, tenant) == twin.pop_many(k, types, tenant)
        assert len(native) == len(twin)
    assert native.pop_many(10**9, [0, 1, 2]) == twin.pop_many(10**9, [0, 1, 2])
    assert len(native) == len(twin)


def test_wide_ids_fill_and_drain() -> None:
    """Sparse 63-bit ids through growth, lazy removal, draining and shrinking."""
    rng = random.Random(11)
    native, twin = compiled.ReadyQueues(), twin_mod.ReadyQueues()
    for _ in range(3):
        ids = rng.sample(range(INT64_MAX), 30_000)
        cols = [ids, [i % 7 for i in ids], [i % 2 for i in ids], [i % 10 for i in ids]]
        native.push_many(*cols)
        twin.push_many(*cols)
        victims = rng.sample(ids, 12_000) + [INT64_MAX, 0]
        assert native.remove_many(victims) == twin.remove_many(victims)
        assert all((job in native) == (job in twin) for job in ids)
        assert len(native) == len(twin)
        assert native.pop_many(5_000, [1, 0], 3) == twin.pop_many(5_000, [1, 0], 3)
        assert native.pop_many(10**6, [0, 1]) == twin.pop_many(10**6, [0, 1])
        assert len(native) == len(twin) == 0
        assert not any(job in native for job in ids[:1000])


@pytest.mark.parametrize("pattern", ID_PATTERNS)
def test_job_id_patterns(pattern: str) -> None:
    """Ids that crowd the native table's home slots still act as the twin's dict keys."""
    rng = random.Random(pattern)
    ids = id_pattern(pattern, 6000, rng)
    native, twin = compiled.ReadyQueues(), twin_mod.ReadyQueues()
    for start in range(0, 6000, 1500):
        batch = ids[start : start + 1500]
        cols = [batch, [i % 3 for i in batch], [0] * len(batch), [i % 10 for i in batch]]
        native.push_many(*cols)
        twin.push_many(*cols)
        victims = rng.sample(ids[: start + 1500], 400)
        assert native.remove_many(victims) == twin.remove_many(victims)
        assert native.pop_many(700, [0]) == twin.pop_many(700, [0])
        assert all((job in native) == (job in twin) for job in ids)
    assert native.pop_many(10**6, [0]) == twin.pop_many(10**6, [0])
    assert len(native) == len(twin) == 0


def test_front_batches_merge_by_seq() -> None:
    """Returns to the head across a tenant's types keep the newest batch first."""
    native, twin = compiled.ReadyQueues(), twin_mod.ReadyQueues()
    for queues in (native, twin):
        queues.push_many([1, 2], [0, 0], [0, 1], [5, 5])
        queues.push_front_many([3], [0], [0], [5])
        queues.push_front_many([4], [0], [1], [5])
        queues.push_front_many([5, 6], [0, 0], [1, 0], [5, 5])
    assert native.pop_many(10, [0, 1], 0) == twin.pop_many(10, [0, 1], 0) == [5, 6, 4, 3, 1, 2]


def test_many_types_dedup() -> None:
    """More types than the linear de-duplication handles, with repeats."""
    native, twin = compiled.ReadyQueues(), twin_mod.ReadyQueues()
    cols = [list(range(200)), [i % 3 for i in range(200)], [i % 40 for i in range(200)], [0] * 200]
    native.push_many(*cols)
    twin.push_many(*cols)
    types = [t % 40 for t in range(39, -41, -1)]
    assert native.pop_many(150, types) == twin.pop_many(150, types)
    assert native.pop_many(150, types, 1) == twin.pop_many(150, types, 1)


def test_init_and_odd_arguments() -> None:
    for cls in (compiled.ReadyQueues, twin_mod.ReadyQueues):
        with pytest.raises(TypeError):
            cls(1)
    native, twin = compiled.ReadyQueues(), twin_mod.ReadyQueues()
    for queues in (native, twin):
        queues.push(2, 1, 1, 0)
    for key in (2, 2.0, True, "2", None, -5, INT64_MAX + 1, 2.5):
        assert (key in native) == (key in twin)
        assert native.depth(1, key) == twin.depth(1, key)
        assert native.is_held(key, 1) == twin.is_held(key, 1)
        assert native.weight(key) == twin.weight(key)
    for queues in (native, twin):
        with pytest.raises(TypeError):
            [1] in queues  # noqa: B015 - unhashable, like a dict lookup
        with pytest.raises(TypeError):
            queues.remove([1])
    assert native.remove(2.0) == twin.remove(2.0)
    for queues in (native, twin):
        with pytest.raises(ValueError):
            queues.pop_many(0, [-1])
        with pytest.raises(ValueError):
            queues.pop_many(-(2**70), [0])
        with pytest.raises(ValueError):
            queues.set_weight(0, 2**70)


def test_list_emptied_while_read() -> None:
    """Reading an item may run Python code that empties the list being read."""
    jobs = [1, 2, 3]

    class Index:
        def __index__(self) -> int:
            jobs.clear()
            return 2

    queues = compiled.ReadyQueues()
    with pytest.raises(ValueError):
        queues.push_many(jobs, [Index(), 0, 0], [0, 0, 0], [0, 0, 0])
    assert len(queues) == 0 and 1 not in queues

    class Equal:
        """Hashes like job 2, so a dict lookup compares it with 2."""

        def __hash__(self) -> int:
            return 2

        def __eq__(self, other: object) -> bool:
            victims.clear()
            return False

    for impl in (compiled, twin_mod):
        queues = impl.ReadyQueues()
        queues.push_many([1, 2, 3], [0, 0, 0], [0, 0, 0], [0, 0, 0])
        victims: list[Any] = [1, Equal(), 3]
        assert queues.remove_many(victims) == 1  # the list iterator stops early
        assert len(queues) == 2
