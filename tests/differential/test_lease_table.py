"""The compiled lease table against its twin, step by step."""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.differential.pair import ID_PATTERNS, both, id_pattern

compiled, twin_mod = both("lease_table")

MAX = 2**63 - 1
INSPECTED = range(-1, 42)

jobs = st.integers(0, 40)
# ints the table cannot hold: negative, past int64, and the int64 edges
odd = st.sampled_from([-1, -(2**63), -(2**63) - 1, MAX, 2**63, 2**70])
any_job = st.one_of(jobs, jobs, jobs, odd)
times = st.integers(0, 30)  # narrow, so deadlines tie often
nows = st.one_of(st.integers(-3, 35), odd)
limits = st.one_of(st.integers(-2, 5), st.sampled_from([2**64, -(2**64)]))
workers = st.integers(0, 3)
odd_workers = st.one_of(workers, odd)
odd_deadlines = st.one_of(times, odd)
# a token relative to the job's current one (0: valid), or a raw odd token
token_picks = st.one_of(st.sampled_from([0, 0, 0, 1, -1]), st.tuples(odd))
# non-ints: some equal to an int key, some to none
non_ints = st.sampled_from([1.0, 2.5, "3", None, True, Decimal(4), float("nan")])


def strict(value: Any) -> Any:
    """``value`` with every element tagged by type, so True never equals 1."""
    if isinstance(value, list):
        return [strict(v) for v in value]
    return (type(value).__name__, value)


def outcome(call: Callable[[Any], Any], table: Any) -> Any:
    try:
        return ("ok", strict(call(table)))
    except ValueError:
        return ("ValueError", None)


class LeaseTableMachine(RuleBasedStateMachine):
    @initialize(first_token=st.sampled_from([1, 2, 1000, MAX - 40]))
    def start(self, first_token: int) -> None:
        self.native = compiled.LeaseTable(first_token)
        self.twin = twin_mod.LeaseTable(first_token)

    def same(self, call: Callable[[Any], Any]) -> None:
        native = outcome(call, self.native)
        assert native == outcome(call, self.twin)

    def token(self, job: int, pick: int | tuple[int]) -> int:
        if isinstance(pick, tuple):
            return pick[0]
        return self.twin.token_of(job) + pick

    def columns(self, pairs: list[tuple[int, int | tuple[int]]]) -> tuple[list[int], list[int]]:
        return [job for job, _ in pairs], [self.token(job, pick) for job, pick in pairs]

    @rule(batch=st.lists(jobs, max_size=16, unique=True), worker=workers, deadline=times)
    def grant_many(self, batch: list[int], worker: int, deadline: int) -> None:
        self.same(lambda t: t.grant_many(batch, worker, deadline))

    @rule(batch=st.lists(any_job, max_size=6), worker=odd_workers, deadline=odd_deadlines)
    def grant_many_invalid(self, batch: list[int], worker: int, deadline: int) -> None:
        self.same(lambda t: t.grant_many(batch, worker, deadline))

    @rule(job=jobs, token=st.integers(1, 60), worker=workers, deadline=times)
    def restore(self, job: int, token: int, worker: int, deadline: int) -> None:
        self.same(lambda t: t.restore(job, token, worker, deadline))

    @rule(
        job=any_job,
        token=st.sampled_from([0, -1, MAX - 1, MAX, 2**63]),
        worker=odd_workers,
        deadline=odd_deadlines,
    )
    def restore_invalid(self, job: int, token: int, worker: int, deadline: int) -> None:
        self.same(lambda t: t.restore(job, token, worker, deadline))

    @rule(job=any_job, pick=token_picks)
    def validate(self, job: int, pick: int | tuple[int]) -> None:
        token = self.token(job, pick)
        self.same(lambda t: t.validate(job, token))

    @rule(pairs=st.lists(st.tuples(any_job, token_picks), max_size=16), short=st.booleans())
    def validate_many(self, pairs: list[tuple[int, int | tuple[int]]], short: bool) -> None:
        batch, tokens = self.columns(pairs)
        if short and tokens:
            tokens.pop()
        self.same(lambda t: t.validate_many(batch, tokens))

    @rule(
        pairs=st.lists(st.tuples(any_job, token_picks), max_size=16),
        deadline=odd_deadlines,
        short=st.booleans(),
    )
    def extend_many(
        self, pairs: list[tuple[int, int | tuple[int]]], deadline: int, short: bool
    ) -> None:
        batch, tokens = self.columns(pairs)
        if short and tokens:
            tokens.pop()
        self.same(lambda t: t.extend_many(batch, tokens, deadline))

    @rule(deadlines=st.lists(times, min_size=1, max_size=8))
    def heartbeats(self, deadlines: list[int]) -> None:
        # every lease extended again and again: stale heap entries pile up, so
        # the heap gets compacted
        live = [job for job in INSPECTED if job in self.twin]
        tokens = [self.twin.token_of(job) for job in live]
        for deadline in deadlines:
            self.same(lambda t, deadline=deadline: t.extend_many(live, tokens, deadline))

    @rule(pairs=st.lists(st.tuples(any_job, token_picks), max_size=16), short=st.booleans())
    def release_many(self, pairs: list[tuple[int, int | tuple[int]]], short: bool) -> None:
        batch, tokens = self.columns(pairs)
        if short and tokens:
            tokens.pop()
        self.same(lambda t: t.release_many(batch, tokens))

    @rule(job=any_job)
    def revoke(self, job: int) -> None:
        self.same(lambda t: t.revoke(job))

    @rule(now=nows, limit=limits, default_limit=st.booleans())
    def pop_expired(self, now: int, limit: int, default_limit: bool) -> None:
        if default_limit:
            self.same(lambda t: t.pop_expired(now))
        else:
            self.same(lambda t: t.pop_expired(now, limit))

    @rule()
    def next_deadline(self) -> None:
        self.same(lambda t: t.next_deadline())

    @rule(key=non_ints, token=st.sampled_from([1, 1.0, "1"]))
    def look_up_non_int(self, key: object, token: object) -> None:
        self.same(lambda t: key in t)
        self.same(lambda t: t.token_of(key))
        self.same(lambda t: t.validate(key, token))
        self.same(lambda t: t.validate_many([key], [token]))
        self.same(lambda t: t.revoke(key))

    @invariant()
    def same_state(self) -> None:
        self.same(len)
        self.same(lambda t: t.next_token)
        for job in INSPECTED:
            self.same(lambda t, job=job: job in t)
            self.same(lambda t, job=job: t.token_of(job))
            self.same(lambda t, job=job: t.worker_of(job))
            self.same(lambda t, job=job: t.deadline_of(job))


TestLeaseTable = LeaseTableMachine.TestCase


def test_init_validation() -> None:
    for impl in (compiled, twin_mod):
        assert impl.LeaseTable().next_token == 1
        assert impl.LeaseTable(MAX).next_token == MAX
        for bad in (0, -1, MAX + 1, 2**64, -(2**64)):
            with pytest.raises(ValueError):
                impl.LeaseTable(bad)


def test_token_counter_exhaustion() -> None:
    for impl in (compiled, twin_mod):
        table = impl.LeaseTable(MAX - 1)
        assert table.grant_many([1, 2], 0, 5) == [MAX - 1, MAX]
        assert table.next_token == 2**63
        with pytest.raises(ValueError):
            table.grant_many([3], 0, 5)
        assert table.grant_many([], 0, 5) == []
        table.restore(4, MAX, 0, 5)
        assert table.next_token == 2**63
        assert table.pop_expired(5) == [1, MAX - 1, 2, MAX, 4, MAX]


def test_pickle_round_trip() -> None:
    tables = []
    for impl in (compiled, twin_mod):
        table = impl.LeaseTable(5)
        table.grant_many([1, 2, 3], 4, 10)
        table.extend_many([2], [6], 30)
        table.restore(9, 2, 1, 10)
        tables.append(pickle.loads(pickle.dumps(table)))
    native, twin = tables
    assert type(native) is compiled.LeaseTable
    assert native.next_token == twin.next_token == 8
    assert native.pop_expired(100) == twin.pop_expired(100) == [9, 2, 1, 5, 3, 7, 2, 6]


@pytest.mark.parametrize("pattern", ID_PATTERNS)
def test_job_id_patterns(pattern: str) -> None:
    """Job ids that crowd the native hash table still act as the twin's dict keys."""
    rng = random.Random(pattern)
    ids = id_pattern(pattern, 5000, rng)
    native, twin = compiled.LeaseTable(), twin_mod.LeaseTable()
    for _ in range(4):
        rng.shuffle(ids)
        fresh = [job for job in ids[:3000] if job not in twin]
        assert native.grant_many(fresh, 1, 10) == twin.grant_many(fresh, 1, 10)
        tokens = [twin.token_of(job) for job in ids]
        assert native.validate_many(ids, tokens) == twin.validate_many(ids, tokens)
        assert native.release_many(ids[1000:3500], tokens[1000:3500]) == twin.release_many(
            ids[1000:3500], tokens[1000:3500]
        )
        for job in ids[::50]:
            assert native.revoke(job) == twin.revoke(job)
        assert len(native) == len(twin)
        assert [native.token_of(job) for job in ids] == [twin.token_of(job) for job in ids]
    assert native.pop_expired(10) == twin.pop_expired(10)
    assert len(native) == len(twin) == 0


def test_large_run_matches() -> None:
    """10,000 jobs through every operation; compaction runs many times."""
    rng = random.Random(20240611)
    native, twin = compiled.LeaseTable(7), twin_mod.LeaseTable(7)
    now = 0
    next_job = 0
    for _ in range(300):
        now += rng.randint(0, 40)
        op = rng.random()
        live = [job for job in range(max(0, next_job - 3000), next_job) if job in twin]
        picked = rng.sample(live, min(len(live), rng.randint(0, 400)))
        tokens = [twin.token_of(job) + (rng.random() < 0.1) for job in picked]
        if op < 0.35 and next_job < 10_000:
            batch = list(range(next_job, min(10_000, next_job + rng.randint(1, 300))))
            next_job = batch[-1] + 1
            deadline = now + rng.randint(0, 200)
            assert native.grant_many(batch, 1, deadline) == twin.grant_many(batch, 1, deadline)
        elif op < 0.6:
            deadline = now + rng.randint(0, 300)
            assert native.extend_many(picked, tokens, deadline) == twin.extend_many(
                picked, tokens, deadline
            )
        elif op < 0.75:
            assert native.release_many(picked, tokens) == twin.release_many(picked, tokens)
        elif op < 0.8:
            for job in picked[:20]:
                assert native.revoke(job) == twin.revoke(job)
        elif op < 0.85 and picked:
            job = picked[0]
            token = twin.token_of(job)
            deadline = now + rng.randint(0, 100)
            assert native.revoke(job) == twin.revoke(job) == token
            native.restore(job, token, 2, deadline)
            twin.restore(job, token, 2, deadline)
        else:
            limit = rng.choice([-1, 0, 1, 50, 1000])
            assert native.pop_expired(now, limit) == twin.pop_expired(now, limit)
        assert native.next_deadline() == twin.next_deadline()
        assert len(native) == len(twin)
        assert native.next_token == twin.next_token
    assert native.pop_expired(2**63) == twin.pop_expired(2**63)
    assert len(native) == len(twin) == 0
