"""``limits``: the price of flow control over HTTP, limited against unlimited, in one run.

``tenants`` tenants each get ``jobs / tenants`` jobs spread over ``hosts_per_tenant``
source hosts of their own (1,000 × 10 = 10,000 hosts by default). The same broker
drains two job types one after the other:

1. the unlimited run: nothing configured;
2. the limited run: first every tenant gets a quota on the job type (max active,
   per hour) and every (tenant, host) a source limit (rate, burst, max active),
   all through the operator API and all high enough never to refuse, so the figure
   prices checking and booking them (and the breakers that watch every source),
   not waiting on them; then the same jobs of a second job type are drained.

A worker's token names one tenant, so each of ``workers`` workers serves its share
of the tenants in turn: it claims ``batch`` of a tenant's jobs and acks them with a
nested claim until that tenant's queue is empty. Reported: both drains' jobs/s and
broker CPU per job, and their ratio.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from .broker_process import BrokerProcess, session
from .common import BASE, SCOPES, Client, Json, Meter, Progress, Result, job_type, kernels

LIMIT_SCOPES = SCOPES + " orch:quota"
IN_FLIGHT = 16  # submissions and limit changes in flight at once
HIGH = {"quota": {"maxActive": 100_000, "perHour": 10**9}}


def host_name(tenant: int, k: int, per_tenant: int) -> str:
    return f"h{tenant * per_tenant + k}.example"


async def limits(
    broker: BrokerProcess,
    tenant_count: int,
    jobs: int,
    hosts_per_tenant: int,
    workers: int,
    batch: int = 100,
) -> Result:
    per_tenant = max(1, jobs // tenant_count)
    total = per_tenant * tenant_count
    names = [f"tenant-{t:04d}" for t in range(tenant_count)]
    async with session() as http:
        apis = [Client(http, broker.url, broker.mint(n, LIMIT_SCOPES)) for n in names]
        free_kind = job_type("limits-off")
        await _submit(apis, free_kind, per_tenant, hosts_per_tenant)
        off = await _drain(broker, apis, free_kind, total, workers, batch, "unlimited")
        limited_kind = job_type("limits-on")
        started = time.perf_counter()
        changes = await _configure(http, broker, apis, limited_kind, hosts_per_tenant)
        configure_s = time.perf_counter() - started
        await _submit(apis, limited_kind, per_tenant, hosts_per_tenant)
        on = await _drain(broker, apis, limited_kind, total, workers, batch, "limited")
    figures: Json = {
        "scenario": "limits",
        "store": broker.store.split(":")[0],
        "kernels": kernels(),
        "tenants": tenant_count,
        "source_hosts": tenant_count * hosts_per_tenant,
        "jobs": total,
        "workers": workers,
        "batch": batch,
        "limit_changes": changes,
        "limit_changes_per_s": round(changes / configure_s),
        **{f"unlimited_{k}": v for k, v in off.items()},
        **{f"limited_{k}": v for k, v in on.items()},
        "limited_over_unlimited": round(on["drain_jobs_per_s"] / off["drain_jobs_per_s"], 3),
    }
    return Result("limits", figures)


async def _submit(apis: list[Client], kind: str, per_tenant: int, hosts: int) -> None:
    todo = list(enumerate(apis))

    async def submitter() -> None:
        while todo:
            t, api = todo.pop()
            jobs = [
                {"jobType": kind, "payload": {"n": i}, "sourceHost": host_name(t, i % hosts, hosts)}
                for i in range(per_tenant)
            ]
            for start in range(0, per_tenant, 1_000):
                await api.post_raw("/jobs", orjson.dumps({"jobs": jobs[start : start + 1_000]}))

    await asyncio.gather(*(submitter() for _ in range(IN_FLIGHT)))


async def _configure(
    http: aiohttp.ClientSession, broker: BrokerProcess, apis: list[Client], kind: str, hosts: int
) -> int:
    """A quota per tenant and a source limit per (tenant, host), all never refusing."""
    todo: list[tuple[Client, str, Json]] = []
    for t, api in enumerate(apis):
        todo.append((api, f"/quotas/{kind}", HIGH["quota"]))
        for k in range(hosts):
            limit = {"rate": 1_000_000, "burst": 1_000_000, "maxActive": 100_000}
            todo.append((api, f"/sources/{host_name(t, k, hosts)}", limit))
    count = len(todo)
    done = 0

    async def putter() -> None:
        nonlocal done
        while todo:
            api, path, body = todo.pop()
            headers = {**api.headers, "X-Stella-Operator-Reason": "load test: limits scenario"}
            url = broker.url + BASE + path
            async with http.put(url, data=orjson.dumps(body), headers=headers) as reply:
                if reply.status >= 300:
                    raise RuntimeError(f"PUT {path}: {reply.status} {await reply.text()}")
            done += 1

    async with Progress("limits", lambda: f"configured {done:,}/{count:,} limits"):
        await asyncio.gather(*(putter() for _ in range(IN_FLIGHT)))
    return count


async def _drain(
    broker: BrokerProcess,
    apis: list[Client],
    kind: str,
    total: int,
    workers: int,
    batch: int,
    label: str,
) -> Json:
    done = 0
    claim: Json = {"jobTypes": [kind], "maxJobs": batch, "leaseSeconds": 60}

    async def worker(index: int) -> None:
        nonlocal done
        wid = f"load-{index}"
        for api in apis[index::workers]:
            jobs = await api.claim(wid, kind, batch)
            while jobs:
                nxt = await api.ack(wid, jobs, claim)
                done += len(jobs)
                jobs = nxt

    meter = Meter(broker)
    started = time.perf_counter()

    def status() -> str:
        return (
            f"{label}: drained {done:,}/{total:,}  {done / (time.perf_counter() - started):,.0f}/s"
        )

    async with Progress("drain", status):
        await asyncio.gather(*(worker(i) for i in range(workers)))
    wall = time.perf_counter() - started
    if done != total:
        raise RuntimeError(f"{label}: drained {done} of {total} jobs")
    measured = meter.figures("drain_")
    return {
        "drain_jobs_per_s": round(total / wall),
        "broker_cpu_us_per_job": round(measured["drain_broker_cpu_s"] / total * 1e6, 1),
        "generator_cpu_us_per_job": round(measured["drain_generator_cpu_s"] / total * 1e6, 1),
        "drain_broker_cpu_per_wall": measured["drain_broker_cpu_per_wall"],
    }
