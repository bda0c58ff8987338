"""The engine on a manual clock: every transition, refusal, retry bound and fence."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.engine import AckItem, Engine, EngineSettings, JobMeta, JobSpec, states
from broker.engine.records import Changed, Finished, Leased, Submitted
from broker.errors import IllegalTransition, NotFound, ValidationFailed

T = "tenant-a"


def spec(job_type: str = "scan", **kw: object) -> JobSpec:
    return JobSpec(job_type, kw.pop("payload", b'{"n":1}'), **kw)  # type: ignore[arg-type]


def submit(engine: Engine, n: int = 1, now: int = 0, tenant: str = T, **kw: object) -> list[int]:
    replies, _ = engine.submit(now, tenant, [spec(**kw) for _ in range(n)])
    return [r.jid for r in replies]


def claim_one(engine: Engine, now: int = 0, tenant: str = T, lease_ms: int = 1000):
    grant, _ = engine.claim(now, tenant, "w1", ["scan"], 1, lease_ms)
    assert len(grant.jobs) == 1
    return grant.jobs[0], grant.tokens[0]


@pytest.fixture
def engine(new_engine: Callable[..., Engine]) -> Engine:
    return new_engine(EngineSettings(retry_base_ms=100, retry_cap_ms=1_000, seed=7))


# -- submission ----------------------------------------------------------------
def test_submit_ready_and_pending(engine: Engine) -> None:
    replies, records = engine.submit(10, T, [spec(), spec(not_before=500), spec(not_before=10)])
    assert [r.state for r in replies] == [states.READY, states.PENDING, states.READY]
    assert [r.deduplicated for r in replies] == [False] * 3
    assert isinstance(records[0], Submitted) and len(records[0].jobs) == 3
    assert len(engine.ready) == 2 and len(engine.timers) == 1
    assert engine.release_due(499) == []
    (changed,) = engine.release_due(500)
    assert isinstance(changed, Changed) and changed.state == states.READY
    assert len(engine.ready) == 3
    assert engine.consistency_errors() == []


def test_invalid_batch_is_refused_whole(engine: Engine) -> None:
    with pytest.raises(ValidationFailed) as err:
        engine.submit(0, T, [spec(), spec(priority=10), spec(max_attempts=0)])
    assert [d["field"] for d in err.value.details or []] == [
        "jobs[1].priority",
        "jobs[2].maxAttempts",
    ]
    assert len(engine.jobs) == 0 and len(engine.ready) == 0 and engine.next_jid == 1


def test_idempotency_key_dedupes_live_and_recent(engine: Engine) -> None:
    meta = JobMeta(idempotency_key="k1")
    replies, records = engine.submit(0, T, [spec(meta=meta), spec(meta=meta)])
    assert replies[0].deduplicated is False and replies[1][:3] == (
        replies[0].jid,
        states.READY,
        True,
    )
    assert len(records[0].jobs) == 1
    job, token = claim_one(engine)
    engine.ack(1, T, [AckItem(job.jid, token, "succeeded")])
    again, records = engine.submit(2, T, [spec(meta=meta)])
    assert again[0] == (job.jid, states.SUCCEEDED, True, 0) and records == []
    # another tenant's key space is separate
    other, _ = engine.submit(2, "tenant-b", [spec(meta=meta)])
    assert other[0].deduplicated is False


def test_idempotency_key_expires_after_retention(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine(EngineSettings(idempotency_retention_ms=1_000))
    meta = JobMeta(idempotency_key="k")
    (first,) = submit(engine, meta=meta)
    job, token = claim_one(engine)
    engine.ack(5, T, [AckItem(first, token, "succeeded")])
    assert engine.submit(1_004, T, [spec(meta=meta)])[0][0].deduplicated is True
    fresh = engine.submit(1_005, T, [spec(meta=meta)])[0][0]
    assert fresh.deduplicated is False and fresh.jid != first


# -- claiming ------------------------------------------------------------------
def test_claim_orders_by_priority_then_submission(engine: Engine) -> None:
    low = submit(engine, 2, priority=1)
    high = submit(engine, 2, priority=8)
    mid = submit(engine, 1, priority=5)
    grant, (record,) = engine.claim(0, T, "w", ["scan"], 10, 1000)
    assert [j.jid for j in grant.jobs] == high + mid + low
    assert isinstance(record, Leased) and record.tokens == grant.tokens
    assert len(set(grant.tokens)) == 5
    assert all(j.state == states.LEASED and j.attempt == 1 for j in grant.jobs)
    assert grant.deadlines == [1000] * 5


def test_a_claim_without_a_lease_gives_each_job_its_own(engine: Engine) -> None:
    five = submit(engine, 2, lease_ms=5_000)
    nine = submit(engine, 1, lease_ms=9_000)
    grant, _ = engine.claim(100, T, "w", ["scan"], 10, None)
    assert [j.jid for j in grant.jobs] == five + nine
    assert grant.deadlines == [5_100, 5_100, 9_100] and len(set(grant.tokens)) == 3
    again = submit(engine, 3, lease_ms=7_000)  # one default for the whole claim
    grant, _ = engine.claim(200, T, "w", ["scan"], 10, None)
    assert [j.jid for j in grant.jobs] == again and grant.deadlines == [7_200] * 3
    assert [engine.leases.deadline_of(jid) for jid in again] == [7_200] * 3


def test_claim_respects_max_types_and_tenant(engine: Engine) -> None:
    submit(engine, 3)
    submit(engine, 2, job_type="other")
    submit(engine, 4, tenant="tenant-b")
    assert engine.claim(0, T, "w", ["nope"], 10)[0].jobs == []
    assert engine.claim(0, "nobody", "w", ["scan"], 10)[0].jobs == []
    assert len(engine.claim(0, T, "w", ["scan"], 2)[0].jobs) == 2
    grant, _ = engine.claim(0, T, "w", ["scan", "other"], 10)
    assert len(grant.jobs) == 3 and all(j.tenant == engine.tenants.find(T) for j in grant.jobs)


def test_claim_without_lease_uses_each_jobs_default(engine: Engine) -> None:
    submit(engine, 1, lease_ms=5_000)
    submit(engine, 1, lease_ms=2_000)
    grant, (record,) = engine.claim(100, T, "w", ["scan"], 10)
    assert grant.deadlines == [5_100, 2_100]
    assert record.deadlines == [5_100, 2_100]  # the ledger sees each job's own deadline
    assert [engine.leases.deadline_of(j.jid) for j in grant.jobs] == [5_100, 2_100]


def test_refused_claim_changes_nothing(engine: Engine) -> None:
    submit(engine, 2)
    with pytest.raises(ValidationFailed):
        engine.claim(0, T, "w", ["scan"], -1)
    with pytest.raises(ValidationFailed):
        engine.claim(0, T, "w", ["scan"], 1, lease_ms=0)
    assert len(engine.ready) == 2 and len(engine.leases) == 0


def test_fairness_between_tenants(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine()
    engine.submit(0, "big", [spec() for _ in range(10_000)])
    small = [r.jid for r in engine.submit(0, "small", [spec() for _ in range(10)])[0]]
    claimed: list[int] = []
    for _ in range(2):
        grant, _ = engine.claim(0, None, "pool", ["scan"], 10, 1000)
        claimed += [j.jid for j in grant.jobs]
    # one job per tenant per turn: the small tenant's ten are all out after 20 claims
    assert set(small) <= set(claimed)


# -- heartbeats ----------------------------------------------------------------
def test_heartbeat_extends_and_reports_lost(engine: Engine) -> None:
    (jid,) = submit(engine)
    job, token = claim_one(engine, lease_ms=1_000)
    replies, (record,) = engine.heartbeat(
        900, T, [jid, jid, 12345], [token, token + 99, 1], [1_000] * 3
    )
    assert [r.deadline for r in replies] == [1_900, -1, -1]
    assert [j.jid for j in record.jobs] == [jid]
    assert engine.expire_leases(1_500) == []
    other, records = engine.heartbeat(901, "tenant-b", [jid], [token], [1_000])
    assert other[0].deadline == -1 and records == []
    with pytest.raises(ValidationFailed):
        engine.heartbeat(0, T, [jid], [token], [0])


# -- acks ----------------------------------------------------------------------
def test_success_and_idempotent_double_ack(engine: Engine) -> None:
    (jid,) = submit(engine)
    job, token = claim_one(engine)
    replies, (fin,) = engine.ack(5, T, [AckItem(jid, token, "succeeded", output=b'{"ok":1}')])
    assert replies[0] == ("accepted", states.SUCCEEDED)
    assert isinstance(fin, Finished) and fin.outputs == [b'{"ok":1}']
    assert jid not in engine.jobs and engine.finished_state(jid) == states.SUCCEEDED
    again, records = engine.ack(6, T, [AckItem(jid, token, "succeeded")])
    assert again[0] == ("accepted", states.SUCCEEDED) and records == []
    differs, _ = engine.ack(6, T, [AckItem(jid, token, "failed")])
    assert differs[0].outcome == "conflict"
    foreign, _ = engine.ack(6, "tenant-b", [AckItem(jid, token, "succeeded")])
    assert foreign[0].outcome == "not_found"
    assert engine.ack(6, T, [AckItem(777, 1, "succeeded")])[0][0].outcome == "not_found"


def test_another_tenants_live_lease_is_not_found(engine: Engine) -> None:
    (jid,) = submit(engine)
    job, token = claim_one(engine)
    engine.tenants.id("tenant-b")
    replies, records = engine.ack(1, "tenant-b", [AckItem(jid, token, "succeeded")])
    assert replies[0].outcome == "not_found" and records == []
    assert job.state == states.LEASED and engine.leases.validate(jid, token)


def test_stale_token_changes_nothing(engine: Engine) -> None:
    (jid,) = submit(engine, max_attempts=3)
    job, first = claim_one(engine, lease_ms=100)
    engine.expire_leases(100)
    job, second = claim_one(engine, now=101, lease_ms=100)
    assert second != first and job.attempt == 2
    replies, records = engine.ack(102, T, [AckItem(jid, first, "succeeded")])
    assert replies[0].outcome == "conflict" and records == []
    assert job.state == states.LEASED and engine.leases.token_of(jid) == second
    assert engine.heartbeat(102, T, [jid], [first], [100])[0][0].deadline == -1


def test_retryable_failure_backs_off_within_bounds(engine: Engine) -> None:
    (jid,) = submit(engine, max_attempts=3)
    job, token = claim_one(engine)
    replies, (fin,) = engine.ack(1_000, T, [AckItem(jid, token, "failed", error=b'{"class":"x"}')])
    assert replies[0].state == states.PENDING and job.state == states.PENDING
    due = fin.due[0]
    assert 1_000 <= due <= 1_000 + engine.retry.ceiling(1)
    assert engine.timers.due_of(jid) == due
    engine.release_due(due)
    job, token = claim_one(engine, now=due)
    assert job.attempt == 2
    (reply,), (fin,) = engine.ack(due, T, [AckItem(jid, token, "timed_out")])
    assert reply.state == states.PENDING and fin.due[0] <= due + engine.retry.ceiling(2)


def test_retry_after_is_a_floor_and_capped(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine(EngineSettings(retry_base_ms=10, retry_cap_ms=20, retry_after_cap_ms=5_000))
    (jid,) = submit(engine)
    _, token = claim_one(engine)
    _, (fin,) = engine.ack(0, T, [AckItem(jid, token, "failed", retry_after_ms=3_000)])
    assert fin.due == [3_000]
    engine.release_due(3_000)
    _, token = claim_one(engine, now=3_000)
    _, (fin,) = engine.ack(3_000, T, [AckItem(jid, token, "failed", retry_after_ms=99_000)])
    assert fin.due == [8_000]


def test_backoff_ceiling_grows_and_caps(engine: Engine) -> None:
    assert [engine.retry.ceiling(n) for n in (1, 2, 3, 4, 5, 60)] == [
        100,
        200,
        400,
        800,
        1000,
        1000,
    ]
    draws = [engine.retry.delay(3) for _ in range(2_000)]
    assert min(draws) >= 0 and max(draws) <= 400 and len(set(draws)) > 100


def test_dead_letter_after_max_attempts_and_non_retryable(engine: Engine) -> None:
    (jid,) = submit(engine, max_attempts=1)
    _, token = claim_one(engine)
    assert engine.ack(0, T, [AckItem(jid, token, "failed")])[0][0].state == states.DEAD
    (jid2,) = submit(engine, max_attempts=5)
    _, token = claim_one(engine)
    reply = engine.ack(0, T, [AckItem(jid2, token, "failed", retryable=False)])[0][0]
    assert reply.state == states.DEAD and engine.finished_state(jid2) == states.DEAD
    assert engine.state_counts[states.DEAD] == 2


def test_worker_cancel_is_terminal(engine: Engine) -> None:
    (jid,) = submit(engine)
    _, token = claim_one(engine)
    assert engine.ack(0, T, [AckItem(jid, token, "canceled")])[0][0].state == states.CANCELED


def test_unknown_status_is_refused_before_any_change(engine: Engine) -> None:
    (jid,) = submit(engine)
    job, token = claim_one(engine)
    with pytest.raises(ValidationFailed):
        engine.ack(0, T, [AckItem(jid, token, "succeeded"), AckItem(jid, token, "done")])
    assert job.state == states.LEASED and engine.leases.validate(jid, token)


# -- lease expiry ----------------------------------------------------------------
def test_expiry_requeues_then_dead_letters(engine: Engine) -> None:
    (jid,) = submit(engine, max_attempts=2)
    job, token = claim_one(engine, lease_ms=50)
    (fin,) = engine.expire_leases(50)
    assert fin.statuses == ["expired"] and fin.states == [states.READY]
    job, token2 = claim_one(engine, now=60, lease_ms=50)
    assert job.attempt == 2
    (fin,) = engine.expire_leases(110)
    assert fin.states == [states.DEAD] and jid not in engine.jobs
    late = engine.ack(111, T, [AckItem(jid, token2, "succeeded")])[0][0]
    assert late.outcome == "conflict"


def test_expired_job_goes_back_to_the_head(engine: Engine) -> None:
    first, second = submit(engine, 2)
    claim_one(engine, lease_ms=10)
    engine.expire_leases(10)
    job, _ = claim_one(engine, now=11)
    assert job.jid == first


# -- operator cancel ---------------------------------------------------------------
def test_cancel_every_live_state(engine: Engine) -> None:
    ready, pending = submit(engine), submit(engine, not_before=1_000)
    submit(engine)
    job, token = claim_one(engine)  # leases `ready`
    (other,) = [j for j in engine.jobs if engine.jobs[j].state == states.READY]
    for jid in (ready[0], pending[0], other):
        state, (record,) = engine.cancel(1, T, jid)
        assert state == states.CANCELED and isinstance(record, Changed)
    assert len(engine.ready) == 0 and len(engine.timers) == 0 and len(engine.leases) == 0
    assert engine.ack(2, T, [AckItem(job.jid, token, "succeeded")])[0][0].outcome == "conflict"
    with pytest.raises(IllegalTransition):
        engine.cancel(3, T, job.jid)
    with pytest.raises(NotFound):
        engine.cancel(3, T, 424242)
    assert engine.consistency_errors() == []


def test_cancel_of_another_tenants_job_is_not_found(engine: Engine) -> None:
    (jid,) = submit(engine)
    engine.tenants.id("tenant-b")
    with pytest.raises(NotFound):
        engine.cancel(0, "tenant-b", jid)
    assert engine.jobs[jid].state == states.READY


# -- the transition table ------------------------------------------------------------
LEGAL = {
    ("pending", "ready"),
    ("pending", "canceled"),
    ("pending", "blocked"),
    ("ready", "leased"),
    ("ready", "pending"),
    ("ready", "canceled"),
    ("ready", "blocked"),
    ("leased", "succeeded"),
    ("leased", "pending"),
    ("leased", "ready"),
    ("leased", "dead"),
    ("leased", "canceled"),
    ("blocked", "ready"),
    ("blocked", "pending"),
    ("blocked", "canceled"),
    # an operator's replay of a run brings failed jobs back
    ("dead", "ready"),
    ("dead", "pending"),
    ("canceled", "ready"),
    ("canceled", "pending"),
}


@pytest.mark.parametrize("src", states.NAMES)
@pytest.mark.parametrize("dst", states.NAMES)
def test_transition_table(src: str, dst: str) -> None:
    assert states.allowed(states.BY_NAME[src], states.BY_NAME[dst]) == ((src, dst) in LEGAL)


def test_illegal_move_raises_typed_error(engine: Engine) -> None:
    (jid,) = submit(engine)
    job = engine.jobs[jid]
    with pytest.raises(IllegalTransition) as err:
        engine.move(job, states.SUCCEEDED)
    assert err.value.code == "ILLEGAL_TRANSITION" and job.state == states.READY


def test_next_wakeup(engine: Engine) -> None:
    assert engine.next_wakeup() == -1
    submit(engine, not_before=700)
    assert engine.next_wakeup() == 700
    submit(engine)
    claim_one(engine, lease_ms=300)
    assert engine.next_wakeup() == 300


# -- the columnar success path -----------------------------------------------------
def test_complete_matches_ack(new_engine: Callable[..., Engine]) -> None:
    """complete() answers exactly as the general, item-by-item ack path, in every case."""
    answers = []
    for use_complete in (True, False):
        engine = new_engine()
        jids = submit(engine, 4)
        engine.tenants.id("tenant-b")
        grant, _ = engine.claim(0, T, "w", ["scan"], 3, 100)
        tokens = grant.tokens
        batch = [
            (jids[0], tokens[0]),  # live
            (jids[1], tokens[1] + 50),  # stale token
            (jids[0], tokens[0]),  # repeated inside the batch
            (jids[3], 1),  # ready, never leased
            (999, 1),  # unknown
            (jids[2], tokens[2]),  # live
        ]
        if use_complete:
            replies, records = engine.complete(
                5,
                T,
                [b[0] for b in batch],
                [b[1] for b in batch],
                [b"1", b"2", b"3", b"4", b"5", b"6"],
            )
        else:
            outputs = [b"1", b"2", b"3", b"4", b"5", b"6"]
            items = [
                AckItem(j, t, "succeeded", output=o)
                for (j, t), o in zip(batch, outputs, strict=True)
            ]
            replies, records = engine._ack_items(5, T, items)  # noqa: SLF001 - the general path
        (fin,) = records
        answers.append(
            (replies, [j.jid for j in fin.jobs], fin.tokens, fin.states, len(fin.outputs))
        )
        assert engine.consistency_errors() == []
    assert answers[0][:4] == answers[1][:4]
    assert [r.outcome for r in answers[0][0]] == [
        "accepted",
        "conflict",
        "accepted",
        "conflict",
        "not_found",
        "accepted",
    ]


def test_complete_fast_path(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine()
    submit(engine, 3)
    grant, _ = engine.claim(0, T, "w", ["scan"], 3, 100)
    jids = [j.jid for j in grant.jobs]
    replies, (fin,) = engine.complete(1, T, jids, grant.tokens, [b"a", None, b"c"])
    assert [r.state for r in replies] == [states.SUCCEEDED] * 3
    assert fin.outputs == [b"a", None, b"c"] and fin.statuses == ["succeeded"] * 3
    assert engine.state_counts[states.SUCCEEDED] == 3 and engine.state_counts[states.LEASED] == 0
    again, records = engine.complete(2, T, jids, grant.tokens)
    assert [r.outcome for r in again] == ["accepted"] * 3 and records == []
    with pytest.raises(ValidationFailed):
        engine.complete(2, T, jids, grant.tokens[:1])


def test_recent_finished_is_bounded(new_engine: Callable[..., Engine]) -> None:
    """A finished job stays answerable for at least 2 and at most 4 later finishes."""
    engine = new_engine(EngineSettings(recent_finished=2))
    jids = submit(engine, 6)
    grant, _ = engine.claim(0, T, "w", ["scan"], 6, 100)
    for jid, token in zip(jids, grant.tokens, strict=True):
        engine.complete(1, T, [jid], [token])
    remembered = [engine.finished_state(j) for j in jids]
    assert remembered[-2:] == [states.SUCCEEDED] * 2 and remembered[0] == -1
    assert len(engine._recent) <= 4  # noqa: SLF001
    reply = engine.ack(2, T, [AckItem(jids[0], grant.tokens[0], "succeeded")])[0][0]
    assert reply.outcome == "not_found"
