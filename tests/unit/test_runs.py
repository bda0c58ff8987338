"""DAG runs in the engine: wiring, readiness, failure propagation, cancel, replay."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.engine import AckItem, Engine, EngineSettings, JobMeta, JobSpec, states
from broker.engine.records import Audited, Changed, RunChanged
from broker.errors import IllegalTransition, NotFound, ValidationFailed
from broker.service.meta_codec import decode_meta, encode_meta
from broker.store import JobRow, RunRow

T = "tenant-a"


def node(key: str, *deps: str, **kw: object) -> JobSpec:
    meta = JobMeta(key=key)
    return JobSpec("step", b"{}", meta=meta, depends_on=deps, **kw)  # type: ignore[arg-type]


@pytest.fixture
def engine(new_engine: Callable[..., Engine]) -> Engine:
    return new_engine(EngineSettings(retry_base_ms=10, retry_cap_ms=10, seed=3))


def make_run(engine: Engine, specs: list[JobSpec], run_id: str = "r1", now: int = 0) -> dict:
    reply, records = engine.create_run(now, T, run_id, None, specs)
    assert not reply.deduplicated
    return {spec.meta.key: r.jid for spec, r in zip(specs, reply.jobs, strict=True)}


def claim_all(engine: Engine, now: int = 0) -> dict[int, int]:
    grant, _ = engine.claim(now, T, "w", ["step"], 1000, 10_000)
    return {job.jid: token for job, token in zip(grant.jobs, grant.tokens, strict=True)}


def ack(engine: Engine, leases: dict[int, int], status: str = "succeeded", now: int = 0, **kw):
    items = [AckItem(jid, token, status, **kw) for jid, token in leases.items()]
    return engine.ack(now, T, items)


def state(engine: Engine, jid: int) -> str:
    job = engine.jobs.get(jid)
    if job is not None:
        return states.NAMES[job.state]
    return states.NAMES[engine.finished_state(jid)]


def test_chain_runs_in_dependency_order(engine: Engine) -> None:
    keys = make_run(engine, [node("export", "norm"), node("fetch"), node("norm", "parse"),
                             node("parse", "fetch")])  # fmt: skip
    # ids follow dependency order whatever the request order
    assert keys["fetch"] < keys["parse"] < keys["norm"] < keys["export"]
    for key in ("fetch", "parse", "norm", "export"):
        leases = claim_all(engine)
        assert list(leases) == [keys[key]]
        _, records = ack(engine, leases)
        assert engine.consistency_errors() == []
    assert engine.runs.live == {}
    assert isinstance(records[-1], RunChanged) and records[-1].status == "succeeded"


def test_fan_in_waits_for_every_parent(engine: Engine) -> None:
    keys = make_run(engine, [node("a"), node("b"), node("join", "a", "b")])
    leases = claim_all(engine)
    assert set(leases) == {keys["a"], keys["b"]}
    ack(engine, {keys["a"]: leases[keys["a"]]})
    assert claim_all(engine) == {}
    _, records = ack(engine, {keys["b"]: leases[keys["b"]]})
    assert any(isinstance(r, Changed) and r.reason == "parents_succeeded" for r in records)
    assert list(claim_all(engine)) == [keys["join"]]


@pytest.mark.parametrize(
    ("specs", "field"),
    [
        ([node("a"), node("a")], "jobs[1].key"),
        ([node("a", "zzz")], "jobs[0].dependsOn"),
        ([node("a", "b"), node("b", "a")], "jobs[0].dependsOn"),
        ([node("a", "a")], "jobs[0].dependsOn"),
        ([JobSpec("step", b"{}")], "jobs[0].key"),
    ],
    ids=["duplicate", "dangling", "cycle", "self", "no-key"],
)
def test_bad_wiring_refuses_the_whole_run(engine: Engine, specs: list[JobSpec], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        engine.create_run(0, T, "r1", None, specs)
    assert field in [d["field"] for d in err.value.details or []]
    assert len(engine.jobs) == 0 and engine.runs.live == {} and engine.next_jid == 1
    assert len(engine.runs.dag) == 0


def test_run_token_dedupes(engine: Engine) -> None:
    first, _ = engine.create_run(0, T, "r1", "tok", [node("a")])
    again, records = engine.create_run(1, T, "r2", "tok", [node("a")])
    assert again.run_id == "r1" and again.deduplicated and records == []
    other, _ = engine.create_run(1, "tenant-b", "r3", "tok", [node("a")])
    assert other.run_id == "r3" and not other.deduplicated


def test_failure_blocks_descendants_and_fails_the_run(engine: Engine) -> None:
    keys = make_run(engine, [node("a"), node("b", "a"), node("c", "b"), node("x")])
    leases = claim_all(engine)
    ack(engine, {keys["x"]: leases[keys["x"]]})
    _, records = ack(engine, {keys["a"]: leases[keys["a"]]}, "failed", retryable=False)
    assert state(engine, keys["a"]) == "dead"
    assert state(engine, keys["b"]) == "blocked" and state(engine, keys["c"]) == "blocked"
    blocked = [r for r in records if isinstance(r, Changed) and r.state == states.BLOCKED]
    assert [j.jid for j in blocked[0].jobs] == [keys["b"], keys["c"]]
    assert [r.status for r in records if isinstance(r, RunChanged)] == ["failed"]
    assert engine.consistency_errors() == []


def test_retryable_failure_keeps_the_dag_waiting(engine: Engine) -> None:
    keys = make_run(engine, [node("a", max_attempts=2), node("b", "a")])
    leases = claim_all(engine)
    ack(engine, leases, "failed")
    assert state(engine, keys["a"]) == "pending" and state(engine, keys["b"]) == "pending"
    engine.release_due(1_000)
    leases = claim_all(engine, 1_000)
    assert list(leases) == [keys["a"]]
    ack(engine, leases)
    assert list(claim_all(engine)) == [keys["b"]]


def test_cancel_run_cancels_leased_jobs_and_their_acks_conflict(engine: Engine) -> None:
    keys = make_run(engine, [node("a"), node("b", "a"), node("c")])
    leases = claim_all(engine)
    count, records = engine.cancel_run(5, T, "r1")
    assert count == 3
    assert {state(engine, jid) for jid in keys.values()} == {"canceled"}
    assert [r.status for r in records if isinstance(r, RunChanged)] == ["canceled"]
    replies, _ = ack(engine, leases)
    assert [r.outcome for r in replies] == ["conflict", "conflict"]
    assert engine.runs.live == {} and len(engine.runs.dag) == 0
    assert engine.consistency_errors() == []


def test_cancel_run_of_another_tenant_changes_nothing(engine: Engine) -> None:
    make_run(engine, [node("a")])
    assert engine.cancel_run(0, "tenant-b", "r1") == (0, [])
    assert len(engine.ready) == 1


def test_join_a_live_run(engine: Engine) -> None:
    make_run(engine, [node("a")])
    late = JobSpec("step", b"{}", meta=JobMeta(run_id="r1", key="late"), depends_on=("a",))
    replies, _ = engine.submit(0, T, [late])
    assert replies[0].state == states.PENDING
    ack(engine, claim_all(engine))
    assert list(claim_all(engine)) == [replies[0].jid]
    with pytest.raises(NotFound):
        engine.submit(0, "tenant-b", [late._replace(meta=JobMeta(run_id="r1", key="x"))])
    with pytest.raises(ValidationFailed):
        engine.submit(0, T, [JobSpec("step", b"{}", depends_on=("a",))])


def _replay(engine: Engine, jids: list[int], now: int = 0):
    """A replay as the service runs it: rows of the revived jobs come from a store."""
    if not engine.knows_run("r1"):  # every job of it finished: the run comes from the store
        members = [row_of(engine, jid) for jid in range(1, engine.next_jid)]
        engine.load_run(RunRow("r1", T, None, 0, "failed", 0), members, _decode)
    targets = engine.replay_targets(T, "r1", jids)
    rows = [row_of(engine, jid) for jid in targets]
    return engine.replay_run(now, T, "r1", jids, rows, _decode, "op", "fixed upstream")


def row_of(engine: Engine, jid: int) -> JobRow:
    """A finished job as a store gives it back."""
    job = engine._recent.get(jid)
    assert job is not None
    return JobRow(
        jid, engine.tenants.name(job.tenant), engine.job_types.name(job.jtype), job.priority,
        job.state, job.attempt, job.max_attempts, job.lease_ms, job.created, job.not_before,
        job.payload, encode_meta(job.meta), 0, 0, None, 0, job.last_token, job.last_status, 0,
    )  # fmt: skip


def _decode(raw: bytes | None) -> JobMeta | None:
    return decode_meta(raw)


def test_partial_replay_reruns_failed_and_downstream_only(engine: Engine) -> None:
    keys = make_run(engine, [node("a"), node("b", "a"), node("c", "b"), node("d", "a")])
    leases = claim_all(engine)
    ack(engine, leases)  # a
    leases = claim_all(engine)
    assert set(leases) == {keys["b"], keys["d"]}
    ack(engine, {keys["d"]: leases[keys["d"]]})
    ack(engine, {keys["b"]: leases[keys["b"]]}, "failed", retryable=False)
    assert state(engine, keys["c"]) == "blocked"
    # replaying the blocked job replays the failed ancestor that blocks it
    jobs, records = _replay(engine, [keys["c"]])
    assert sorted(j.jid for j in jobs) == [keys["b"], keys["c"]]
    assert any(isinstance(r, Audited) and r.reason == "fixed upstream" for r in records)
    assert state(engine, keys["b"]) == "ready" and state(engine, keys["c"]) == "pending"
    leases = claim_all(engine)
    assert list(leases) == [keys["b"]]
    assert engine.jobs[keys["b"]].attempt == 1  # a new series of attempts
    ack(engine, leases)
    _, records = ack(engine, claim_all(engine))
    assert [r.status for r in records if isinstance(r, RunChanged)] == ["succeeded"]


def test_replay_refuses_jobs_that_did_not_fail(engine: Engine) -> None:
    keys = make_run(engine, [node("a"), node("b", "a")])
    with pytest.raises(IllegalTransition):
        engine.replay_targets(T, "r1", [keys["a"]])
    with pytest.raises(NotFound):
        engine.replay_targets(T, "r1", [999])
    with pytest.raises(NotFound):
        engine.replay_targets("tenant-b", "r1", [keys["a"]])


# -- random DAGs -------------------------------------------------------------------
@st.composite
def dags(draw: st.DrawFn) -> tuple[list[JobSpec], set[str]]:
    n = draw(st.one_of(st.integers(1, 20), st.integers(100, 300)))  # small and large runs
    rnd = random.Random(draw(st.integers(0, 2**32)))
    specs = []
    for i in range(n):
        parents = rnd.sample(range(i), k=min(i, rnd.randint(0, 3)))
        specs.append(node(f"k{i}", *(f"k{p}" for p in parents)))
    rnd.shuffle(specs)
    failing = {f"k{i}" for i in range(n) if rnd.random() < draw(st.floats(0, 0.3))}
    return specs, failing


def _descendants(specs: list[JobSpec], roots: set[str]) -> set[str]:
    children: dict[str, list[str]] = {}
    for spec in specs:
        for dep in spec.depends_on:
            children.setdefault(dep, []).append(spec.meta.key)  # type: ignore[union-attr]
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _drive(
    engine: Engine, parents: dict[int, set[int]], failing: set[int], done: dict[int, int]
) -> list[int]:
    """Claim and ack until nothing is claimable, checking dependency order;
    returns the jobs leased."""
    leased: list[int] = []
    while True:
        leases = claim_all(engine)
        if not leases:
            return leased
        leased.extend(leases)
        for jid in leases:
            assert all(done.get(p) == states.SUCCEEDED for p in parents[jid]), "leased too early"
        for jid, token in leases.items():
            bad = jid in failing
            ack(engine, {jid: token}, "failed" if bad else "succeeded", retryable=False)
            done[jid] = states.DEAD if bad else states.SUCCEEDED
        assert engine.consistency_errors() == []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # a kernel module
@given(dags())
def test_random_dags_run_to_a_terminal_state(kernels: object, case) -> None:
    specs, failing_keys = case
    engine = Engine(EngineSettings(), kernels=kernels)
    keys = make_run(engine, specs)
    parents = {keys[s.meta.key]: {keys[d] for d in s.depends_on} for s in specs}  # type: ignore
    failing = {keys[k] for k in failing_keys}
    done: dict[int, int] = {}
    _drive(engine, parents, failing, done)
    dead = {k for k in failing_keys if keys[k] in done}
    blocked = {k for k, jid in keys.items() if state(engine, jid) == "blocked"}
    assert blocked == _descendants(specs, dead) - dead
    assert all(state(engine, jid) in ("succeeded", "dead", "blocked") for jid in keys.values())
    run_live = "r1" in engine.runs.live
    assert run_live == bool(blocked)
    if not dead:
        return
    # the fix: replay every failed job; the run succeeds without re-running succeeded jobs
    succeeded_before = {jid for jid, s in done.items() if s == states.SUCCEEDED}
    _replay(engine, sorted(keys[k] for k in dead))
    rerun = _drive(engine, parents, set(), done)
    assert all(state(engine, jid) == "succeeded" for jid in keys.values())
    assert engine.runs.live == {}
    assert succeeded_before.isdisjoint(rerun)
    assert engine.consistency_errors() == []
