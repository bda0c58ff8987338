"""The batched paths of flow control decide exactly as the job-by-job ones.

``FlowControl.admit`` first tries to admit a whole claim with one kernel call
per kind of limit, and ``succeeded`` frees a batch the same way; both must leave
every decision, bucket, counter and parked job as the job-by-job paths would.
Two flow controls get the same limits and the same jobs, one with the batched
paths switched off, and are compared after every step.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker import _native
from broker.engine.breakers import BreakerSettings
from broker.engine.job import Job, JobMeta
from broker.engine.limits import FlowControl, Quota, Source

# breakers that open after two failures in three attempts and half-open a step later,
# so that claims meet open and half-open breakers too
TWITCHY = BreakerSettings(window_ms=10_000, min_volume=2, cooldown_ms=1_500, probes=2)

HOSTS = ["a.example", "b.example", "c.example", None]

quotas = st.one_of(
    st.none(),
    st.builds(
        Quota,
        st.one_of(st.none(), st.integers(0, 12)),  # max active
        st.one_of(st.none(), st.integers(1, 40_000)),  # per hour
        st.one_of(st.none(), st.integers(1, 12)),  # burst
        st.sampled_from([False, False, False, True]),  # paused
    ),
)
sources = st.one_of(
    st.none(),
    st.builds(
        Source,
        st.one_of(st.none(), st.floats(0.5, 50)),  # rate
        st.one_of(st.none(), st.integers(1, 12)),  # burst
        st.one_of(st.none(), st.integers(0, 12)),  # max active
        st.sampled_from([False, False, False, True]),  # paused
    ),
)
popped = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(HOSTS)),  # tenant, type, host
    max_size=30,
)


class JobByJob(FlowControl):
    """The reference: the batched paths switched off."""

    def _admit_all(self, now: int, jobs: list[Job]) -> bool:
        return False

    def succeeded(self, now: int, jobs: Any) -> None:
        for job in jobs:
            self.finished(now, job, "succeeded")


def configure(fc: FlowControl, limits: list[tuple[Quota | None, list[Source | None]]]) -> None:
    for tid, (quota, per_host) in enumerate(limits):
        for jtype in (0, 1):
            fc.set_quota(tid, jtype, quota, 0)
        for host, source in zip(HOSTS[:3], per_host, strict=True):
            fc.set_source(tid, host, source, 0)  # type: ignore[arg-type]


def snapshot(fc: FlowControl, now: int) -> Any:
    keys = [(t << 31 | x) for t in (0, 1) for x in range(4)]
    skeys = [fc.source_key(t, h) for t in (0, 1) for h in HOSTS[:3]]
    return (
        dict(fc.holding),
        dict(fc.held),
        dict(fc.parked_until),
        {k: [j.jid for j in q] for k, q in fc.parked.items()},
        [fc.quota_rate.state(k, now) for k in keys],
        [fc.source_rate.state(k, now) for k in skeys],
        [fc.quota_slots.inflight(k) for k in keys],
        [fc.source_slots.inflight(k) for k in skeys],
        fc.refused,
        [(k, fc.breakers.state(k, now)) for k in sorted(fc.breakers.keys())],
        list(fc.incidents),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(quotas, st.lists(sources, min_size=3, max_size=3)), min_size=2, max_size=2),
    st.lists(popped, min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=6, max_size=6),
)
def test_batched_admission_and_release_match_job_by_job(
    limits: list[tuple[Quota | None, list[Source | None]]],
    claims: list[list[tuple[int, int, str | None]]],
    finish: list[tuple[int, int]],
) -> None:
    batched, reference = FlowControl(_native, TWITCHY), JobByJob(_native, TWITCHY)
    for fc in (batched, reference):
        configure(fc, limits)
    jid = 0
    leased: list[list[Job]] = [[], []]
    fast = 0
    for step, claim in enumerate(claims):
        now = 1_000 * (step + 1)
        outcomes = []
        for side, fc in enumerate((batched, reference)):
            queues, jobs = fc.due(now)  # as the engine does before each claim
            for offset, (tenant, jtype, host) in enumerate(claim):
                meta = None if host is None else JobMeta(source_host=host)
                jobs.append(Job(jid + offset, tenant, jtype, 5, 5, 30_000, 0, 0, b"", meta, 2))
            back: list[int] = []
            before = fc.refused
            admitted = fc.admit(now, jobs, lambda js, back=back: back.extend(j.jid for j in js))
            fast += side == 0 and bool(jobs) and fc.refused == before and not back
            leased[side].extend(admitted)
            outcomes.append((queues, [j.jid for j in admitted], back, snapshot(fc, now)))
        assert outcomes[0] == outcomes[1]
        jid += len(claim)
        # upstream 429s slow the newest jobs' sources (and count as failures for
        # their breakers); then a few leased jobs succeed
        done, throttled = finish[step % len(finish)]
        for side, fc in enumerate((batched, reference)):
            for _ in range(min(throttled, len(leased[side]))):
                fc.finished(now, leased[side].pop(), "throttled", 0)
            fc.succeeded(now, leased[side][:done])
            del leased[side][:done]
        assert snapshot(batched, now) == snapshot(reference, now)


def test_a_batch_of_successes_recovers_a_slowed_source_as_one_by_one_would() -> None:
    """After an upstream 429 cut the rate, n successes in one call add n steps."""
    batched, reference = FlowControl(_native), JobByJob(_native)
    source = Source(rate=100.0, burst=50, max_active=20)
    leased = []
    for fc in (batched, reference):
        fc.set_source(0, "a.example", source, 0)
        fc.due(0)
        jobs = [
            Job(i, 0, 0, 5, 5, 30_000, 0, 0, b"", JobMeta(source_host="a.example"), 2)
            for i in range(10)
        ]
        assert fc.admit(1, jobs, lambda back: None) == jobs
        fc.finished(2, jobs[0], "throttled", 0)
        leased.append(jobs[1:])
    batched.succeeded(3, leased[0])
    reference.succeeded(3, leased[1])
    key = batched.source_key(0, "a.example")
    cut = 100_000 * 800 // 1000  # the 429's multiplicative decrease
    assert batched.source_rate.state(key, 3)[1] > cut  # type: ignore[index]
    assert snapshot(batched, 3) == snapshot(reference, 3)


def test_a_job_without_a_source_is_not_held_by_a_breaker_park() -> None:
    """The park key of the breaker on (first tenant, first host, first job type) is -1,
    which is also "no source": a job with no source host must not wait behind it."""
    for fc in (FlowControl(_native, TWITCHY), JobByJob(_native, TWITCHY)):
        fc.set_source(0, "a.example", Source(rate=10.0), 0)
        fc.due(0)
        key = fc.source_key(0, "a.example")
        assert key == 0
        fc.parked_until[-1] = 10_000  # as an open breaker on (key 0, job type 0) parks
        job = Job(1, 0, 0, 5, 5, 30_000, 0, 0, b"", None, 2)
        assert fc.admit(1, [job], lambda back: None) == [job]
        assert not fc.parked
