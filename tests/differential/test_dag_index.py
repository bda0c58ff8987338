"""The compiled DAG index against its pure-Python twin, step by step."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.differential.pair import both

compiled, twin_mod = both("dag_index")

JOBS = st.integers(min_value=0, max_value=40)
# out-of-range ids must fail (or find nothing) the same way on both sides
ODD_JOBS = st.sampled_from([-1, -(2**63), 2**63 - 1, 2**63, 2**64])
ANY_JOB = st.one_of(JOBS, JOBS, JOBS, ODD_JOBS)
PROBES = [*range(-1, 42), 2**63 - 1, 2**63]


def outcome(obj: Any, method: str, *args: Any) -> tuple[str, Any]:
    """What a call did: its value, or that it raised ValueError."""
    try:
        return "ok", getattr(obj, method)(*args)
    except ValueError:
        return "ValueError", None


class DagMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native = compiled.DagIndex()
        self.twin = twin_mod.DagIndex()

    def same(self, method: str, *args: Any) -> Any:
        got = outcome(self.native, method, *args)
        want = outcome(self.twin, method, *args)
        assert got == want, (method, args)
        return want[1]

    def jobs_in(self, *states: int) -> list[int]:
        return [j for j in range(41) if self.twin.state(j) in states]

    @rule(job=ANY_JOB, parents=st.lists(ANY_JOB, max_size=5))
    def add(self, job: int, parents: list[int]) -> None:
        self.same("add", job, parents)

    @rule(data=st.data())
    def add_fresh(self, data: st.DataObject) -> None:
        # a new job over known parents, with repeats: the usual, successful add
        free = [j for j in range(41) if j not in self.twin]
        known = [j for j in range(41) if j in self.twin]
        if not free:
            return
        job = data.draw(st.sampled_from(free))
        parents = data.draw(st.lists(st.sampled_from(known), max_size=6)) if known else []
        self.same("add", job, parents)

    @rule(jobs=st.lists(ANY_JOB, max_size=4))
    def complete_many(self, jobs: list[int]) -> None:
        self.same("complete_many", jobs)

    @rule(data=st.data())
    def complete_ready(self, data: st.DataObject) -> None:
        ready = self.jobs_in(twin_mod.READY)
        jobs = data.draw(st.permutations(ready))[: data.draw(st.integers(0, len(ready)))]
        spoil = data.draw(st.booleans())
        if jobs and spoil:
            # a duplicate or a job that is not READY spoils the whole batch
            jobs.insert(data.draw(st.integers(0, len(jobs))), data.draw(ANY_JOB))
        self.same("complete_many", jobs)

    @rule(job=ANY_JOB)
    def fail(self, job: int) -> None:
        self.same("fail", job)

    @rule(data=st.data())
    def fail_live(self, data: st.DataObject) -> None:
        live = self.jobs_in(twin_mod.WAITING, twin_mod.READY)
        if live:
            self.same("fail", data.draw(st.sampled_from(live)))

    @rule(job=ANY_JOB)
    def reset(self, job: int) -> None:
        self.same("reset", job)

    @rule(data=st.data())
    def reset_dead(self, data: st.DataObject) -> None:
        dead = self.jobs_in(twin_mod.DEAD, twin_mod.BLOCKED)
        if dead:
            self.same("reset", data.draw(st.sampled_from(dead)))

    @rule(job=ANY_JOB)
    def discard(self, job: int) -> None:
        self.same("discard", job)

    @invariant()
    def agree(self) -> None:
        assert len(self.native) == len(self.twin)
        for job in PROBES:
            assert (job in self.native) == (job in self.twin), job
            for method in ("state", "unmet", "parents", "children"):
                assert getattr(self.native, method)(job) == getattr(self.twin, method)(job)


TestDag = DagMachine.TestCase


def test_constants() -> None:
    for name in ("WAITING", "READY", "DONE", "DEAD", "BLOCKED", "UNKNOWN"):
        assert getattr(compiled, name) == getattr(twin_mod, name)


def test_init_takes_no_arguments() -> None:
    for mod in (compiled, twin_mod):
        with pytest.raises(TypeError):
            mod.DagIndex(1)


def test_lookups_of_other_objects_behave_like_a_dict() -> None:
    pair = (compiled.DagIndex(), twin_mod.DagIndex())
    for dag in pair:
        dag.add(1, [])
        dag.add(2, [1.0, True])
    for probe in (1.0, True, 2.0, 1.5, "1", None, 2**80):
        assert [probe in dag for dag in pair] == [probe in pair[1]] * 2
        assert pair[0].state(probe) == pair[1].state(probe)
        assert pair[0].children(probe) == pair[1].children(probe)
    for dag in pair:
        with pytest.raises(TypeError):
            [] in dag  # noqa: B015 - unhashable, as in a dict
    assert pair[0].parents(2) == pair[1].parents(2) == [1]


def test_large_random_run_end_to_end() -> None:
    rng = random.Random(7)
    native, twin = compiled.DagIndex(), twin_mod.DagIndex()
    next_job = 0
    for _ in range(10_000):
        op = rng.random()
        if op < 0.45 or next_job < 50:
            known = range(max(0, next_job - 200), next_job)
            parents = [rng.choice(known) for _ in range(rng.randint(0, 4))] if next_job else []
            parents = [p for p in parents if p in twin]
            assert native.add(next_job, parents) == twin.add(next_job, parents)
            next_job += 1
        elif op < 0.75:
            ready = [
                j
                for j in range(max(0, next_job - 300), next_job)
                if twin.state(j) == twin_mod.READY
            ]
            batch = rng.sample(ready, min(len(ready), rng.randint(1, 64)))
            assert native.complete_many(batch) == twin.complete_many(batch)
        elif op < 0.85:
            job = rng.randrange(next_job)
            assert outcome(native, "fail", job) == outcome(twin, "fail", job)
        elif op < 0.93:
            job = rng.randrange(next_job)
            assert outcome(native, "reset", job) == outcome(twin, "reset", job)
        else:
            job = rng.randrange(next_job)
            assert native.discard(job) == twin.discard(job)
    assert len(native) == len(twin)
    for job in range(next_job + 1):
        assert native.state(job) == twin.state(job)
        assert native.unmet(job) == twin.unmet(job)
        assert native.parents(job) == twin.parents(job)
        assert native.children(job) == twin.children(job)
