"""The compiled timer index against its twin, step by step."""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.differential.pair import both

compiled, twin_mod = both("timer_index")

MAX = 2**63 - 1
INSPECTED = range(-1, 42)

jobs = st.integers(0, 40)
# ints the index cannot hold: negative, past int64, and the int64 edges
odd = st.sampled_from([-1, -(2**63), -(2**63) - 1, MAX, 2**63, 2**70])
any_job = st.one_of(jobs, jobs, jobs, odd)
times = st.integers(0, 30)  # narrow, so due times tie often
odd_times = st.one_of(times, odd)
nows = st.one_of(st.integers(-3, 35), odd)
limits = st.one_of(st.integers(-2, 5), st.sampled_from([2**64, -(2**64)]))
# non-ints: some equal to an int key, some to none
non_ints = st.sampled_from([1.0, 2.5, "3", None, True, Decimal(4), float("nan")])


def strict(value: Any) -> Any:
    """``value`` with every element tagged by type, so True never equals 1."""
    if isinstance(value, list):
        return [strict(v) for v in value]
    return (type(value).__name__, value)


def outcome(call: Callable[[Any], Any], index: Any) -> Any:
    try:
        return ("ok", strict(call(index)))
    except ValueError:
        return ("ValueError", None)


class TimerIndexMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.native = compiled.TimerIndex()
        self.twin = twin_mod.TimerIndex()

    def same(self, call: Callable[[Any], Any]) -> None:
        native = outcome(call, self.native)
        assert native == outcome(call, self.twin)

    @rule(job=jobs, due=times)
    def add(self, job: int, due: int) -> None:
        self.same(lambda t: t.add(job, due))

    @rule(job=any_job, due=odd_times)
    def add_invalid(self, job: int, due: int) -> None:
        self.same(lambda t: t.add(job, due))

    @rule(pairs=st.lists(st.tuples(jobs, times), max_size=24))
    def add_many(self, pairs: list[tuple[int, int]]) -> None:
        # repeats in a batch are allowed: the last add wins
        batch, dues = [job for job, _ in pairs], [due for _, due in pairs]
        self.same(lambda t: t.add_many(batch, dues))

    @rule(pairs=st.lists(st.tuples(any_job, odd_times), max_size=8), short=st.booleans())
    def add_many_invalid(self, pairs: list[tuple[int, int]], short: bool) -> None:
        batch, dues = [job for job, _ in pairs], [due for _, due in pairs]
        if short and dues:
            dues.pop()
        self.same(lambda t: t.add_many(batch, dues))

    @rule(dues=st.lists(times, min_size=1, max_size=8))
    def reschedule_all(self, dues: list[int]) -> None:
        # every job moved again and again: stale heap entries pile up, so the
        # heap gets compacted
        queued = [job for job in INSPECTED if job in self.twin]
        for due in dues:
            self.same(lambda t, due=due: t.add_many(queued, [due] * len(queued)))

    @rule(job=any_job)
    def remove(self, job: int) -> None:
        self.same(lambda t: t.remove(job))

    @rule(now=nows, limit=limits, default_limit=st.booleans())
    def pop_due(self, now: int, limit: int, default_limit: bool) -> None:
        if default_limit:
            self.same(lambda t: t.pop_due(now))
        else:
            self.same(lambda t: t.pop_due(now, limit))

    @rule()
    def next_due(self) -> None:
        self.same(lambda t: t.next_due())

    @rule(key=non_ints)
    def look_up_non_int(self, key: object) -> None:
        self.same(lambda t: key in t)
        self.same(lambda t: t.due_of(key))
        self.same(lambda t: t.remove(key))

    @invariant()
    def same_state(self) -> None:
        self.same(len)
        for job in INSPECTED:
            self.same(lambda t, job=job: job in t)
            self.same(lambda t, job=job: t.due_of(job))


TestTimerIndex = TimerIndexMachine.TestCase


def test_init_takes_no_arguments() -> None:
    for impl in (compiled, twin_mod):
        index = impl.TimerIndex()
        assert len(index) == 0
        assert index.next_due() == -1
        assert index.pop_due(MAX) == []
        with pytest.raises(TypeError):
            impl.TimerIndex(1)


def test_pickle_round_trip() -> None:
    indexes = []
    for impl in (compiled, twin_mod):
        index = impl.TimerIndex()
        index.add_many([1, 2, 3, 1], [10, 5, 10, 7])
        indexes.append(pickle.loads(pickle.dumps(index)))
    native, twin = indexes
    assert type(native) is compiled.TimerIndex
    native.add(4, 7)
    twin.add(4, 7)
    assert native.pop_due(100) == twin.pop_due(100) == [2, 1, 4, 3]


def test_large_run_matches() -> None:
    """About 50,000 adds, moves, removes and pops of 3,000 jobs; compaction runs often."""
    rng = random.Random(20240611)
    native, twin = compiled.TimerIndex(), twin_mod.TimerIndex()
    now = 0
    for _ in range(400):
        now += rng.randint(0, 30)
        op = rng.random()
        if op < 0.45:
            batch = [rng.randrange(3_000) for _ in range(rng.randint(0, 500))]
            dues = [now + rng.randint(0, 300) for _ in batch]
            assert native.add_many(batch, dues) is twin.add_many(batch, dues) is None
        elif op < 0.55:
            for _ in range(50):
                job, due = rng.randrange(3_000), now + rng.randint(0, 300)
                native.add(job, due)
                twin.add(job, due)
        elif op < 0.7:
            for job in rng.sample(range(3_000), 300):
                assert native.remove(job) == twin.remove(job)
        else:
            limit = rng.choice([-1, 0, 1, 50, 1000])
            assert native.pop_due(now, limit) == twin.pop_due(now, limit)
        assert native.next_due() == twin.next_due()
        assert len(native) == len(twin)
    assert [native.due_of(job) for job in range(3_000)] == [
        twin.due_of(job) for job in range(3_000)
    ]
    assert native.pop_due(2**63) == twin.pop_due(2**63)
    assert len(native) == len(twin) == 0
