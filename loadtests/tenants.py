"""``tenants``: one noisy tenant with a deep backlog, many quiet tenants with a few jobs.

The HTTP API takes the tenant from the token and a worker claims only its own
tenant's jobs (``Principal.require`` refuses a token without a tenant), so every
tenant runs its own workers: ``workers`` ack-and-claim loops for the noisy tenant
and one long-polling worker per quiet tenant (a worker serving several tenants
would have to poll them in turn, which the contract says workers never need to).

Timeline: the noisy tenant's jobs are submitted; the quiet workers park; the
noisy workers start draining; ``quiet_delay_s`` later every quiet tenant submits
its jobs (one request each, carrying the send time). Fairness then means
isolation: a quiet tenant's jobs are claimed as soon as its own worker asks,
however deep the noisy tenant's queue is and however busy the broker is with it.
Reported: each tenant's share of all claims, the claim shares while quiet jobs
were outstanding, submit→claim for the quiet jobs, and the time from the first
quiet submission until every quiet tenant's jobs were claimed.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import orjson

from .broker_process import BrokerProcess, session
from .burn_down import submit_all
from .common import (
    SCOPES,
    Client,
    Json,
    Meter,
    Progress,
    Result,
    job_type,
    kernels,
    quantiles_ms,
    rate,
)

SUBMITTERS = 16  # quiet tenants' submissions in flight at once
SETTLE_S = 30.0


async def tenants(
    broker: BrokerProcess,
    tenant_count: int,
    jobs: int,
    noisy_share: float,
    workers: int,
    batch: int = 100,
    wait_ms: int = 5_000,
    quiet_delay_s: float = 0.2,
) -> Result:
    quiet_count = tenant_count - 1
    per_quiet = max(1, round(jobs * (1 - noisy_share) / quiet_count)) if quiet_count else 0
    noisy_jobs = jobs - per_quiet * quiet_count
    if quiet_count < 1 or noisy_jobs < 1:
        raise ValueError("need at least 2 tenants and jobs left for the noisy one")
    kind = job_type("tenants")
    names = ["noisy"] + [f"quiet-{i:04d}" for i in range(1, tenant_count)]
    claims: list[tuple[float, int, int]] = []  # (time, tenant index, jobs) per claim reply
    quiet_waits: list[tuple[int, float]] = []  # (tenant index, submit→claim s) per quiet job
    noisy_done = 0

    async with session() as http:
        apis = [Client(http, broker.url, broker.mint(name, SCOPES)) for name in names]
        noisy = apis[0]
        await submit_all(noisy, kind, noisy_jobs, {"n": 1})

        async def noisy_worker(index: int) -> None:
            nonlocal noisy_done
            wid = f"noisy-{index}"
            claim: Json = {"jobTypes": [kind], "maxJobs": batch, "leaseSeconds": 60}
            got = await noisy.claim(wid, kind, batch)
            while got:
                claims.append((time.perf_counter(), 0, len(got)))
                nxt = await noisy.ack(wid, got, claim)
                noisy_done += len(got)
                got = nxt

        async def quiet_worker(index: int) -> None:
            api, left = apis[index], per_quiet
            while left > 0:
                got = await api.claim(names[index], kind, min(left, 1_000), wait_ms)
                if got:
                    now, wall = time.perf_counter(), time.time_ns()
                    claims.append((now, index, len(got)))
                    quiet_waits.extend((index, (wall - j["payload"]["ts"]) / 1e9) for j in got)
                    await api.ack(names[index], got)
                    left -= len(got)

        async def quiet_submitter(todo: list[int]) -> None:
            while todo:
                index = todo.pop()
                for start in range(0, per_quiet, 1_000):
                    job = {"jobType": kind, "payload": {"ts": time.time_ns()}}
                    count = min(1_000, per_quiet - start)
                    await apis[index].post_raw("/jobs", orjson.dumps({"jobs": [job] * count}))

        def status() -> str:
            return (
                f"noisy {noisy_done:,}/{noisy_jobs:,}  quiet claimed "
                f"{len(quiet_waits):,}/{per_quiet * quiet_count:,}"
            )

        meter = Meter(broker)
        async with Progress("tenants", status):
            quiet = [asyncio.create_task(quiet_worker(i)) for i in range(1, tenant_count)]
            await asyncio.sleep(0.5)  # let the quiet workers' long polls park
            started = time.perf_counter()
            loud = [asyncio.create_task(noisy_worker(i)) for i in range(workers)]
            await asyncio.sleep(quiet_delay_s)
            quiet_start = time.perf_counter()
            todo = list(range(1, tenant_count))
            await asyncio.gather(*(quiet_submitter(todo) for _ in range(SUBMITTERS)))
            quiet_sent = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*quiet), SETTLE_S)
            quiet_end = max(t for t, i, _ in claims if i > 0)
            noisy_at_quiet_end = sum(n for t, i, n in claims if i == 0 and t <= quiet_end)
            await asyncio.wait_for(asyncio.gather(*loud), SETTLE_S)
            noisy_end = time.perf_counter()
        measured = meter.figures()
    return _result(
        broker,
        names,
        claims,
        quiet_waits,
        {
            "tenants": tenant_count,
            "jobs": jobs,
            "noisy_jobs": noisy_jobs,
            "quiet_jobs_per_tenant": per_quiet,
            "noisy_workers": workers,
            "quiet_workers": quiet_count,
            "batch": batch,
            "noisy_drain_s": round(noisy_end - started, 3),
            "noisy_jobs_per_s": rate(noisy_jobs, noisy_end - started),
            "quiet_submit_s": round(quiet_sent - quiet_start, 3),
            "quiet_all_claimed_s": round(quiet_end - quiet_start, 3),
            "noisy_done_share_when_quiet_done": round(noisy_at_quiet_end / noisy_jobs, 3),
        }
        | _window_share(claims, quiet_start, quiet_end)
        | measured,
    )


def _window_share(claims: list[tuple[float, int, int]], start: float, end: float) -> Json:
    """Claim shares while quiet jobs were outstanding (between the first quiet
    submission and the last quiet claim)."""
    window = [(i, n) for t, i, n in claims if start <= t <= end]
    total = sum(n for _, n in window) or 1
    quiet = sum(n for i, n in window if i > 0)
    return {
        "window_claims": total,
        "window_noisy_share": round((total - quiet) / total, 4),
        "window_quiet_share": round(quiet / total, 4),
    }


def _result(
    broker: BrokerProcess,
    names: list[str],
    claims: list[tuple[float, int, int]],
    quiet_waits: list[tuple[int, float]],
    figures: Json,
) -> Result:
    counts = [0] * len(names)
    for _, i, n in claims:
        counts[i] += n
    slowest = [0.0] * len(names)
    for i, wait in quiet_waits:
        slowest[i] = max(slowest[i], wait)
    total = sum(counts)
    shares = [c / total for c in counts]
    quiet_shares = shares[1:]
    order = [0] + sorted(range(1, len(names)), key=lambda i: -slowest[i])
    rows = [
        {
            "tenant": names[i],
            "claimed": counts[i],
            "claim_share": round(shares[i], 6),
            "slowest_submit_to_claim_ms": round(slowest[i] * 1000, 2) if i else None,
        }
        for i in order
    ]
    head: Json = {"scenario": "tenants", "store": broker.store.split(":")[0], "kernels": kernels()}
    head |= figures
    head |= {
        "noisy_claim_share": round(shares[0], 4),
        "quiet_claim_share_min": round(min(quiet_shares), 6),
        "quiet_claim_share_median": round(statistics.median(quiet_shares), 6),
        "quiet_claim_share_max": round(max(quiet_shares), 6),
        "quiet_tenants_fully_claimed": sum(
            1 for c in counts[1:] if c == figures["quiet_jobs_per_tenant"]
        ),
        **quantiles_ms([w for _, w in quiet_waits], "quiet_submit_to_claim", ("p50", "p99", "max")),
    }
    # the Markdown table shows the noisy tenant and the ten slowest-served quiet ones
    return Result("tenants", head, rows=rows, md_rows=11)
