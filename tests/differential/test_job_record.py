"""The compiled job record's batch operations against its twin's: the same answers
and the same fields afterwards, on compiled records and on the twin's own."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.engine.job import JobMeta
from tests.differential.pair import both

compiled, twin_mod = both("job_record")
NATIVE, TWIN = compiled.Job, twin_mod.Job

# (tenant, state, attempt, has meta) per job; None for a missing job
shapes = st.lists(
    st.one_of(
        st.none(),
        st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 99), st.booleans()),
    ),
    max_size=12,
)


def make(cls: Any, shapes: list[Any]) -> list[Any]:
    jobs = []
    for jid, shape in enumerate(shapes):
        if shape is None:
            jobs.append(None)
            continue
        tenant, state, attempt, described = shape
        meta = JobMeta(project="p") if described else None
        job = cls(jid, tenant, 0, 5, 5, 30_000, 0, 0, b"", meta, state)
        job.attempt = attempt
        jobs.append(job)
    return jobs


def fields(jobs: list[Any]) -> list[Any]:
    return [None if j is None else (j.jid, j.state, j.attempt, j.last_token, j.last_status)
            for j in jobs]  # fmt: skip


@given(shapes, st.integers(-1, 2), st.integers(0, 6))
def test_all_in_answers_alike(shapes: list[Any], tenant: int, state: int) -> None:
    expected = TWIN.all_in(make(TWIN, shapes), tenant, state)
    assert NATIVE.all_in(make(NATIVE, shapes), tenant, state) is expected
    assert NATIVE.all_in(make(TWIN, shapes), tenant, state) is expected  # a twin engine's


@pytest.mark.parametrize("records", [NATIVE, TWIN], ids=["c-records", "py-records"])
@given(shapes=shapes, state=st.integers(0, 6), data=st.data())
def test_lease_and_finish_many_change_the_same_fields(
    records: Any, shapes: list[Any], state: int, data: st.DataObject
) -> None:
    shapes = [s for s in shapes if s is not None]
    tokens = data.draw(st.lists(st.integers(1, 2**63 - 1), min_size=len(shapes),
                                max_size=len(shapes)))  # fmt: skip
    outcomes = []
    for batch in (NATIVE, TWIN):
        jobs = make(records, shapes)
        batch.lease_many(jobs, 2)
        leased = fields(jobs)
        described = batch.finish_many(jobs, tokens, state, "succeeded")
        outcomes.append((leased, fields(jobs), [j.jid for j in described]))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("batch", [NATIVE, TWIN], ids=["c", "py"])
def test_finish_many_refuses_columns_of_different_lengths(batch: Any) -> None:
    jobs = make(batch, [(0, 2, 1, False)] * 2)
    with pytest.raises(ValueError):
        batch.finish_many(jobs, [1], 3, "succeeded")
    assert fields(jobs) == [(0, 2, 1, 0, ""), (1, 2, 1, 0, "")]  # nothing changed
