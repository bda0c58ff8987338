"""The compiled job table and job record against their twins, step by step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.differential.pair import both

compiled, twin_mod = both("job_table")
compiled_record, twin_record = both("job_record")

jobs = st.integers(0, 30)
odd = st.sampled_from([-1, 2**63, 2**70, 1.0, "3", None, True])
any_job = st.one_of(jobs, jobs, jobs, odd)
values = st.sampled_from(["a", "b", None, 7, (1, 2)])


def outcome(call: Callable[[Any], Any], table: Any) -> Any:
    try:
        return ("ok", call(table))
    except KeyError as exc:
        return ("KeyError", exc.args)
    except ValueError:
        return ("ValueError", None)


class JobTableMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.native = compiled.JobTable()
        self.twin = twin_mod.JobTable()

    def same(self, call: Callable[[Any], Any]) -> None:
        assert outcome(call, self.native) == outcome(call, self.twin)

    @rule(job=any_job, value=values)
    def store(self, job: Any, value: Any) -> None:
        self.same(lambda t: t.__setitem__(job, value))

    @rule(job=any_job)
    def read(self, job: Any) -> None:
        self.same(lambda t: (t[job], t.get(job), t.get(job, "default"), job in t))

    @rule(job=any_job)
    def delete(self, job: Any) -> None:
        self.same(lambda t: t.__delitem__(job))

    @rule(job=any_job)
    def pop(self, job: Any) -> None:
        self.same(lambda t: t.pop(job))
        self.same(lambda t: t.pop(job, "default"))

    @rule(batch=st.lists(any_job, max_size=6))
    def many(self, batch: list[Any]) -> None:
        self.same(lambda t: t.get_many(batch))

    @rule(batch=st.lists(jobs, max_size=6))
    def pop_many(self, batch: list[int]) -> None:
        self.same(lambda t: t.pop_many(batch))

    @rule()
    def clear(self) -> None:
        self.same(lambda t: t.clear())

    @invariant()
    def listed_alike(self) -> None:
        self.same(lambda t: (len(t), t.keys(), t.values(), t.items(), list(t)))


TestJobTable = JobTableMachine.TestCase


def test_a_table_keeps_its_records_alive_and_lets_them_go() -> None:
    import gc
    import weakref

    class Record:
        pass

    table = compiled.JobTable()
    record = Record()
    ref = weakref.ref(record)
    table[1] = record
    table[2] = record
    del record
    gc.collect()
    assert ref() is not None
    table[1] = None
    del table[2]
    gc.collect()
    assert ref() is None
    many = [Record() for _ in range(1000)]
    refs = [weakref.ref(r) for r in many]
    for i, r in enumerate(many):
        table[i] = r
    del many, r
    del table  # dealloc releases every record
    gc.collect()
    assert all(ref() is None for ref in refs)


FIELDS = st.fixed_dictionaries(
    {
        "jid": st.integers(0, 2**63 - 1),
        "tenant": st.integers(0, 2**31 - 1),
        "jtype": st.integers(0, 2**31 - 1),
        "priority": st.integers(0, 9),
        "max_attempts": st.integers(1, 100),
        "lease_ms": st.integers(1, 3_600_000),
        "created": st.integers(0, 2**62),
        "not_before": st.integers(0, 2**62),
        "payload": st.binary(max_size=8),
        "meta": st.sampled_from([None, ("p", None), (1, 2, 3)]),
        "state": st.integers(0, 6),
    }
)


@given(FIELDS, st.integers(0, 100), st.integers(0, 2**63 - 1), st.sampled_from(["", "failed"]))
def test_job_records_hold_the_same_fields(
    fields: dict[str, Any], attempt: int, token: int, status: str
) -> None:
    made = [compiled_record.Job(**fields), twin_record.Job(**fields)]
    for job in made:
        job.attempt = attempt
        job.last_token = token
        job.last_status = status
    names = [*fields, "attempt", "last_token", "last_status"]
    native, twin = ({name: getattr(job, name) for name in names} for job in made)
    assert native == twin and repr(made[0]) == repr(made[1])
