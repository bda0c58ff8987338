"""Engine properties over random command sequences (hypothesis).

A model beside the engine tracks which token each job was last granted and
whether that grant is still outstanding. After every step:
- no job is held under two tokens at once, and a granted job was not held;
- attempts never exceed maxAttempts;
- every live job is in exactly one state and one kernel (consistency_errors);
- an ack or heartbeat with a stale token changes nothing.
Separately: the same seed and the same inputs give the same records.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.engine import AckItem, Engine, EngineSettings, JobMeta, JobSpec, states
from broker.engine.records import Changed, Extended, Finished, Leased, Submitted

TENANTS = ["a", "b"]
TYPES = ["x", "y"]
STATUSES = ["succeeded", "failed", "canceled", "timed_out"]


def snapshot(engine: Engine) -> dict[int, tuple[int, int, int]]:
    return {
        jid: (job.state, job.attempt, engine.leases.token_of(jid))
        for jid, job in engine.jobs.items()
    }


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(EngineSettings(retry_base_ms=5, retry_cap_ms=50, seed=3))
        self.now = 0
        self.held: dict[int, int] = {}  # jid -> outstanding token
        self.granted: list[tuple[str, int, int]] = []  # (tenant, jid, token) ever granted

    def _drop_finished(self, records: list[Any]) -> None:
        for record in records:
            if isinstance(record, Finished):
                for job, token in zip(record.jobs, record.tokens, strict=True):
                    assert self.held.pop(job.jid) == token
            elif isinstance(record, Changed) and record.state == states.CANCELED:
                for job in record.jobs:
                    self.held.pop(job.jid, None)

    @rule(
        tenant=st.sampled_from(TENANTS),
        jtypes=st.lists(st.sampled_from(TYPES), min_size=1, max_size=4),
        prio=st.integers(0, 9),
        delay=st.sampled_from([0, 0, 7]),
        attempts=st.integers(1, 3),
        key=st.none() | st.sampled_from(["k1", "k2"]),
    )
    def submit(
        self, tenant: str, jtypes: list[str], prio: int, delay: int, attempts: int, key: str | None
    ) -> None:
        meta = JobMeta(idempotency_key=key) if key else None
        specs = [
            JobSpec(
                t,
                b"{}",
                priority=prio,
                max_attempts=attempts,
                not_before=self.now + delay,
                meta=meta,
            )
            for t in jtypes
        ]
        replies, records = self.engine.submit(self.now, tenant, specs)
        assert len(replies) == len(specs)
        fresh = [r for r in replies if not r.deduplicated]
        assert len(fresh) == (len(records[0].jobs) if records else 0)

    @rule(
        tenant=st.sampled_from([*TENANTS, None]),
        jtypes=st.lists(st.sampled_from(TYPES), min_size=1, max_size=2),
        k=st.integers(0, 5),
        lease=st.sampled_from([None, 3, 20]),
    )
    def claim(self, tenant: str | None, jtypes: list[str], k: int, lease: int | None) -> None:
        grant, records = self.engine.claim(self.now, tenant, "w", jtypes, k, lease)
        assert len(grant.jobs) <= k
        for job, token in zip(grant.jobs, grant.tokens, strict=True):
            assert job.jid not in self.held, "job leased to two holders"
            assert job.attempt <= job.max_attempts
            self.held[job.jid] = token
            self.granted.append((self.engine.tenants.name(job.tenant), job.jid, token))
        if grant.jobs:
            assert isinstance(records[0], Leased)

    @precondition(lambda self: self.granted)
    @rule(data=st.data(), status=st.sampled_from(STATUSES), retryable=st.booleans())
    def ack(self, data: st.DataObject, status: str, retryable: bool) -> None:
        tenant, jid, token = data.draw(st.sampled_from(self.granted))
        stale = self.held.get(jid) != token
        before = snapshot(self.engine)
        replies, records = self.engine.ack(
            self.now, tenant, [AckItem(jid, token, status, retryable=retryable)]
        )
        if stale:
            assert records == [] and snapshot(self.engine) == before
            assert replies[0].outcome in ("accepted", "conflict")  # a repeat, or stale
        else:
            assert replies[0].outcome == "accepted"
        self._drop_finished(records)

    @precondition(lambda self: self.granted)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        picks = data.draw(st.lists(st.sampled_from(self.granted), min_size=1, max_size=4))
        tenant = picks[0][0]
        jids = [jid for _, jid, _ in picks]
        tokens = [token for _, _, token in picks]
        live = {
            jid: token
            for owner, jid, token in picks
            if owner == tenant and self.held.get(jid) == token
        }
        replies, records = self.engine.complete(self.now, tenant, jids, tokens)
        finished = [job.jid for job in records[0].jobs] if records else []
        assert sorted(finished) == sorted(live)
        assert all(self.engine.finished_state(jid) == states.SUCCEEDED for jid in finished)
        assert len(replies) == len(jids)
        self._drop_finished(records)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def ack_from_another_tenant(self, data: st.DataObject) -> None:
        jid = data.draw(st.sampled_from(sorted(self.held)))
        owner = self.engine.tenants.name(self.engine.jobs[jid].tenant)
        intruder = "b" if owner == "a" else "a"
        self.engine.tenants.id(intruder)
        before = snapshot(self.engine)
        item = AckItem(jid, self.held[jid], "succeeded")
        replies, records = self.engine.ack(self.now, intruder, [item])
        assert replies[0].outcome == "not_found" and records == []
        beat, records = self.engine.heartbeat(self.now, intruder, [jid], [self.held[jid]], [5])
        assert beat[0].deadline == -1 and records == []
        assert snapshot(self.engine) == before

    @precondition(lambda self: self.granted)
    @rule(data=st.data(), extend=st.integers(1, 30))
    def heartbeat(self, data: st.DataObject, extend: int) -> None:
        tenant, jid, token = data.draw(st.sampled_from(self.granted))
        stale = self.held.get(jid) != token
        before = snapshot(self.engine)
        replies, records = self.engine.heartbeat(self.now, tenant, [jid], [token], [extend])
        if stale:
            assert replies[0].deadline == -1 and records == []
            assert snapshot(self.engine) == before
        else:
            assert replies[0].deadline == self.now + extend and isinstance(records[0], Extended)

    @precondition(lambda self: self.engine.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        jid = data.draw(st.sampled_from(sorted(self.engine.jobs)))
        tenant = self.engine.tenants.name(self.engine.jobs[jid].tenant)
        _, records = self.engine.cancel(self.now, tenant, jid)
        self._drop_finished(records)

    @rule(step=st.integers(1, 25))
    def tick(self, step: int) -> None:
        self.now += step
        self._drop_finished(self.engine.expire_leases(self.now))
        self.engine.release_due(self.now)

    @invariant()
    def structures_agree(self) -> None:
        assert self.engine.consistency_errors() == []
        for jid, token in self.held.items():
            job = self.engine.jobs[jid]
            assert job.state == states.LEASED and self.engine.leases.token_of(jid) == token
        leased = {jid for jid, job in self.engine.jobs.items() if job.state == states.LEASED}
        assert leased == set(self.held)


TestEngineMachine = EngineMachine.TestCase


def describe(records: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for r in records:
        if isinstance(r, Submitted | Changed):
            out.append((type(r).__name__, r.at, [j.jid for j in r.jobs]))
        elif isinstance(r, Leased):
            out.append(("Leased", r.at, [j.jid for j in r.jobs], r.tokens, r.deadlines))
        elif isinstance(r, Finished):
            out.append(
                ("Finished", r.at, [j.jid for j in r.jobs], r.tokens, r.statuses, r.states, r.due)
            )
        else:
            out.append(("Extended", r.at, [j.jid for j in r.jobs], r.tokens, r.deadlines))
    return out


def run_script(seed: int, script: list[tuple[int, int, int]]) -> list[tuple[Any, ...]]:
    engine = Engine(EngineSettings(retry_base_ms=10, retry_cap_ms=100, seed=seed))
    records: list[Any] = []
    now = 0
    for op, a, b in script:
        now += 1
        if op == 0:
            records += engine.submit(now, "t", [JobSpec("x", b"1", priority=a % 10)] * (b % 4 + 1))[
                1
            ]
        elif op == 1:
            grant, recs = engine.claim(now, "t", "w", ["x"], a % 5, 5 + b % 10)
            records += recs
        elif op == 2 and engine.leases.next_deadline() >= 0:
            jid = next(j for j, job in engine.jobs.items() if job.state == states.LEASED)
            status = STATUSES[a % 4]
            records += engine.ack(now, "t", [AckItem(jid, engine.leases.token_of(jid), status)])[1]
        else:
            now += a % 20
            records += engine.expire_leases(now) + engine.release_due(now)
    return describe(records)


@given(
    seed=st.integers(0, 2**32),
    script=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 99), st.integers(0, 99)), max_size=60
    ),
)
def test_same_seed_same_records(seed: int, script: list[tuple[int, int, int]]) -> None:
    assert run_script(seed, script) == run_script(seed, script)
