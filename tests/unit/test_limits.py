"""Flow control in the engine: fairness, quotas, sources, breakers, on a manual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.engine import AckItem, Engine, EngineSettings, JobMeta, JobSpec, states
from broker.engine.limits import Blackout, Quota, Source
from broker.engine.records import Audited

T = "tenant-a"
HOST = "nvd.nist.gov"


@pytest.fixture
def engine(new_engine: Callable[..., Engine]) -> Engine:
    return new_engine(EngineSettings(retry_base_ms=10, retry_cap_ms=10))


def sourced(n: int, host: str = HOST, job_type: str = "fetch") -> list[JobSpec]:
    return [JobSpec(job_type, b"{}", meta=JobMeta(source_host=host)) for _ in range(n)]


def claim(engine: Engine, now: int, n: int = 100, job_type: str = "fetch") -> dict[int, int]:
    grant, _ = engine.claim(now, T, "w", [job_type], n, 60_000)
    return {job.jid: token for job, token in zip(grant.jobs, grant.tokens, strict=True)}


def ack(engine: Engine, now: int, leases: dict[int, int], status: str = "succeeded", **kw):
    return engine.ack(now, T, [AckItem(j, t, status, **kw) for j, t in leases.items()])


def test_fairness_a_million_queued_does_not_starve_a_hundred(engine: Engine) -> None:
    """Bound: with equal weights two tenants share each claim of 100 about evenly
    (deficit round robin), so tenant B's 100 jobs are all claimed within the first
    three claims even behind tenant A's 1,000,000."""
    chunk = [JobSpec("scan", b"")] * 10_000
    for _ in range(100):
        engine.submit(0, "a", chunk)
    small = {r.jid for r in engine.submit(1, "b", [JobSpec("scan", b"")] * 100)[0]}
    claimed: set[int] = set()
    for _ in range(3):
        grant, _ = engine.claim(2, None, "pool", ["scan"], 100, 60_000)
        assert len(grant.jobs) == 100
        claimed.update(job.jid for job in grant.jobs)
    assert small <= claimed


def test_weights_share_claims_between_tenants(engine: Engine) -> None:
    for tenant in ("a", "b"):
        engine.submit(0, tenant, [JobSpec("scan", b"")] * 1_000)
    engine.set_limit(0, "a", "weight", "", 3)
    grant, _ = engine.claim(1, None, "pool", ["scan"], 400, 60_000)
    share = sum(job.tenant == engine.tenants.find("a") for job in grant.jobs) / 400
    assert 0.7 <= share <= 0.8


def test_paused_quota_holds_the_queue_until_resumed(engine: Engine) -> None:
    engine.submit(0, T, sourced(5))
    first = claim(engine, 0, 1)
    engine.set_limit(1, T, "quota", "fetch", Quota(paused=True))
    assert claim(engine, 2) == {}
    ack(engine, 3, first)  # in-flight work goes on
    engine.set_limit(4, T, "quota", "fetch", Quota(paused=False))
    assert len(claim(engine, 5)) == 4
    assert engine.consistency_errors() == []


def test_max_active_and_per_hour(engine: Engine) -> None:
    engine.submit(0, T, sourced(10))
    engine.set_limit(0, T, "quota", "fetch", Quota(max_active=2))
    leases = claim(engine, 0)
    assert len(leases) == 2 and claim(engine, 0) == {}
    ack(engine, 1, dict([next(iter(leases.items()))]))
    engine.release_due(1)
    assert len(claim(engine, 1)) == 1
    engine.set_limit(2, T, "quota", "fetch", Quota(per_hour=3600, burst=2))
    engine.release_due(2)
    assert len(claim(engine, 2)) == 2
    assert claim(engine, 3) == {}
    engine.release_due(1_003)
    assert len(claim(engine, 1_003)) == 1
    assert engine.consistency_errors() == []


def test_a_rate_limited_job_holds_no_slot(engine: Engine) -> None:
    engine.submit(0, T, sourced(10))
    engine.set_limit(0, T, "quota", "fetch", Quota(max_active=5))
    engine.set_limit(0, T, "source", HOST, Source(rate=1, burst=2, max_active=3))
    leases = claim(engine, 0)
    assert len(leases) == 2  # two tokens; the rest parked without slots
    limits = engine.limits
    assert limits.quota_slots.inflight(next(iter(limits.holding.values()))[0]) == 2
    assert len(limits.parked_jids) == 8
    assert engine.consistency_errors() == []
    engine.release_due(1_000)  # a token: the parked jobs are back in reach
    assert len(claim(engine, 1_000)) == 1
    assert engine.consistency_errors() == []


def test_throttle_then_upstream_429_slows_the_source(engine: Engine) -> None:
    engine.submit(0, T, sourced(4))
    engine.set_limit(0, T, "source", HOST, Source(rate=100, burst=10))
    leases = claim(engine, 0)
    before = engine.limits.source_state(engine.tenants.id(T), HOST, 0)
    ack(engine, 1, leases, "failed", throttled=True)
    after = engine.limits.source_state(engine.tenants.id(T), HOST, 1)
    assert after["penalties"] == before["penalties"] + len(leases)
    assert after["rate"] < before["rate"]


def test_blackout_parks_a_source_until_it_ends(engine: Engine) -> None:
    engine.submit(0, T, sourced(3) + sourced(2, host="other.example"))
    engine.set_limit(0, T, "source", HOST, Source(blackouts=(Blackout(0, 60_000),)))
    got = claim(engine, 10)
    assert len(got) == 2  # only the other source's jobs
    assert claim(engine, 59_999) == {}
    engine.release_due(60_000)
    assert len(claim(engine, 60_000)) == 3


def test_daily_blackout_wraps_midnight() -> None:
    window = Blackout(23 * 3_600_000, 3_600_000, daily=True)
    day = 86_400_000 * 20_000
    assert window.covers(day + 23 * 3_600_000 + 5) and window.covers(day + 100)
    assert not window.covers(day + 2 * 3_600_000)
    assert window.ends_after(day + 23 * 3_600_000) == day + 86_400_000 + 3_600_000


def test_breaker_opens_on_failures_and_probes_after_cooldown(engine: Engine) -> None:
    engine.set_limit(0, T, "source", HOST, Source(rate=1_000, burst=1_000))
    engine.submit(0, T, sourced(40, job_type="fetch"))
    for job in engine.jobs.values():
        job.max_attempts = 1
    leases = claim(engine, 0, 25)
    _, records = ack(engine, 1, leases, "failed", retryable=False)
    incidents = engine.take_incidents()
    assert [r.action for r in incidents if isinstance(r, Audited)] == ["breaker.opened"]
    assert claim(engine, 2) == {}
    engine.release_due(30_001)
    probe = claim(engine, 30_001)
    assert len(probe) == 1  # one probe while half-open
    ack(engine, 30_002, probe)
    engine.release_due(30_002)
    assert len(claim(engine, 30_002)) == 14
    assert engine.consistency_errors() == []


def test_cancel_of_a_parked_job(engine: Engine) -> None:
    engine.submit(0, T, sourced(3))
    engine.set_limit(0, T, "source", HOST, Source(paused=True))
    assert claim(engine, 0) == {}
    parked = sorted(engine.limits.parked_jids)
    assert len(parked) == 3
    state, _ = engine.cancel(1, T, parked[0])
    assert state == states.CANCELED and len(engine.limits.parked_jids) == 2
    assert engine.consistency_errors() == []


OPS = st.lists(
    st.tuples(st.sampled_from(["claim", "ack", "fail", "tick", "limit"]), st.integers(0, 5)),
    max_size=60,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # a kernel module
@given(OPS)
def test_in_flight_never_exceeds_the_limits(kernels: object, ops) -> None:
    engine = Engine(EngineSettings(retry_base_ms=5, retry_cap_ms=5), kernels=kernels)
    engine.submit(0, T, sourced(30) + sourced(10, host="b.example"))
    quota, source = 4, 2
    engine.set_limit(0, T, "quota", "fetch", Quota(max_active=quota))
    engine.set_limit(0, T, "source", HOST, Source(max_active=source, rate=50, burst=3))
    now, leases = 0, {}
    for op, n in ops:
        now += 7
        if op == "claim":
            got = claim(engine, now, n + 1)
            leases.update(got)
            live = [engine.jobs[j] for j in leases]
            if got:  # a claim never takes in-flight work past a limit in force
                assert len(live) <= quota
                assert sum(j.meta.source_host == HOST for j in live) <= source
        elif op in ("ack", "fail") and leases:
            jid = sorted(leases)[n % len(leases)]
            ack(engine, now, {jid: leases.pop(jid)}, "succeeded" if op == "ack" else "failed")
        elif op == "tick":
            engine.release_due(now)
        elif op == "limit":
            quota = n + 1
            engine.set_limit(now, T, "quota", "fetch", Quota(max_active=quota))
        assert engine.consistency_errors() == []


def test_a_slowed_bucket_is_kept_until_it_recovers(
    engine: Engine, new_engine: Callable[..., Engine]
) -> None:
    """Each 429 records the bucket's adaptive state; once successes bring it back to
    its configured rate the kept state is let go (a record with no state)."""
    engine.set_limit(0, T, "source", HOST, Source(rate=10.0, burst=100))
    engine.submit(0, T, sourced(40))
    leases = claim(engine, 1, 40)
    first = dict(list(leases.items())[:1])
    ack(engine, 2, first, "failed", throttled=True)
    (kept,) = engine.take_incidents()
    assert (kept.kind, kept.tenant, kept.name) == ("bucket", T, HOST)
    assert kept.config == (8_000, 2, 1)  # rate in milli-tokens/s, paused until, penalties
    restarted = new_engine(EngineSettings(retry_base_ms=10, retry_cap_ms=10))
    restarted.restore_limits(3, [("source", T, HOST, Source(rate=10.0, burst=100)),
                                 ("bucket", T, HOST, kept.config)])  # fmt: skip
    assert restarted.limits_of(T, "source") == engine.limits_of(T, "source")
    key = restarted.limits.source_key(restarted.tenants.find(T), HOST)
    assert restarted.limits.source_rate.state(key, 3)[1] == 8_000  # type: ignore[index]
    assert restarted.take_incidents() == []  # restoring writes nothing
    rest = dict(list(leases.items())[1:])
    records = []
    for jid, token in rest.items():  # 1 % of the configured rate back per success
        ack(engine, 4, {jid: token})
        records += engine.take_incidents()
    assert [r.config for r in records] == [None]  # let go once back at 10/s
