"""``limits``: the price of flow control over HTTP, limited against unlimited, in one run.

``tenants`` tenants each get ``jobs / tenants`` jobs spread over ``hosts_per_tenant``
source hosts of their own (1,000 × 10 = 10,000 hosts by default). The same broker
drains five rounds of such jobs, each round with a job type and hosts of its own:
a warm-up round (not counted), then alternately unlimited and limited, so that a
broker growing slower as its ledger grows weighs on both alike:

* unlimited: nothing configured for the round's job type and hosts;
* limited: first every tenant gets a quota on the round's job type (max active,
  per hour) and every (tenant, host) a source limit (rate, burst, max active),
  all through the operator API and all high enough never to refuse, so the figure
  prices checking and booking them (and the breakers that watch every source),
  not waiting on them.

A worker's token names one tenant, so each of ``workers`` workers serves its share
of the tenants in turn: it claims ``batch`` of a tenant's jobs and acks them with a
nested claim until that tenant's queue is empty. Reported: each kind's mean drain
jobs/s and broker CPU per job over its two rounds, and the ratio of the means.
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
# limits high enough never to refuse: the rounds price checking them, not waiting on them
QUOTA: Json = {"maxActive": 100_000, "perHour": 10**9}
SOURCE: Json = {"rate": 1_000_000, "burst": 1_000_000, "maxActive": 100_000}


def host_name(tenant: int, k: int, per_tenant: int, round_: int) -> str:
    return f"h{tenant * per_tenant + k}.r{round_}.example"


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
    rounds: dict[bool, list[Json]] = {False: [], True: []}
    changes = 0
    configure_s = 0.0
    async with session() as http:
        apis = [Client(http, broker.url, broker.mint(n, LIMIT_SCOPES)) for n in names]
        # round 0 warms the broker up (its first drain is slower, whatever it is) and
        # is not counted
        for round_, limited in enumerate((False, False, True, False, True)):
            kind = job_type(f"limits-{round_}")
            if limited:
                started = time.perf_counter()
                changes += await _configure(http, broker, apis, kind, hosts_per_tenant, round_)
                configure_s += time.perf_counter() - started
            await _submit(apis, kind, per_tenant, hosts_per_tenant, round_)
            label = f"round {round_}/4, {'limited' if limited else 'unlimited'}"
            drained = await _drain(broker, apis, kind, total, workers, batch, label)
            drained["sources_in_force"] = await _sources_seen(http, broker, apis[0])
            if round_:
                rounds[limited].append(drained)
            if limited:  # the next unlimited round runs with nothing configured at all
                started = time.perf_counter()
                changes += await _configure(
                    http, broker, apis, kind, hosts_per_tenant, round_, remove=True
                )
                configure_s += time.perf_counter() - started
    off, on = _mean(rounds[False]), _mean(rounds[True])
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
        "unlimited_rounds_jobs_per_s": ", ".join(str(r["drain_jobs_per_s"]) for r in rounds[False]),
        "limited_rounds_jobs_per_s": ", ".join(str(r["drain_jobs_per_s"]) for r in rounds[True]),
        **{f"unlimited_{k}": v for k, v in off.items()},
        **{f"limited_{k}": v for k, v in on.items()},
        "limited_over_unlimited": round(on["drain_jobs_per_s"] / off["drain_jobs_per_s"], 3),
    }
    return Result("limits", figures)


async def _sources_seen(http: aiohttp.ClientSession, broker: BrokerProcess, api: Client) -> int:
    """How many source limits one tenant has in force (read back, not assumed)."""
    async with http.get(broker.url + BASE + "/sources", headers=api.headers) as reply:
        return len((await reply.json(loads=orjson.loads))["sources"])


def _mean(rounds: list[Json]) -> Json:
    return {k: round(sum(r[k] for r in rounds) / len(rounds), 1) for k in rounds[0]}


async def _submit(apis: list[Client], kind: str, per_tenant: int, hosts: int, round_: int) -> None:
    todo = list(enumerate(apis))

    async def submitter() -> None:
        while todo:
            t, api = todo.pop()
            jobs = [
                {
                    "jobType": kind,
                    "payload": {"n": i},
                    "sourceHost": host_name(t, i % hosts, hosts, round_),
                }
                for i in range(per_tenant)
            ]
            for start in range(0, per_tenant, 1_000):
                await api.post_raw("/jobs", orjson.dumps({"jobs": jobs[start : start + 1_000]}))

    await asyncio.gather(*(submitter() for _ in range(IN_FLIGHT)))


async def _configure(
    http: aiohttp.ClientSession,
    broker: BrokerProcess,
    apis: list[Client],
    kind: str,
    hosts: int,
    round_: int,
    remove: bool = False,
) -> int:
    """A quota per tenant and a source limit per (tenant, host), all never refusing
    (or, with ``remove``, those limits deleted)."""
    todo: list[tuple[Client, str, Json]] = []
    for t, api in enumerate(apis):
        todo.append((api, f"/quotas/{kind}", QUOTA))
        for k in range(hosts):
            todo.append((api, f"/sources/{host_name(t, k, hosts, round_)}", SOURCE))
    count = len(todo)
    done = 0

    async def putter() -> None:
        nonlocal done
        while todo:
            api, path, body = todo.pop()
            headers = {**api.headers, "X-Stella-Operator-Reason": "load test: limits scenario"}
            url = broker.url + BASE + path
            method = "DELETE" if remove else "PUT"
            data = None if remove else orjson.dumps(body)
            async with http.request(method, url, data=data, headers=headers) as reply:
                if reply.status >= 300:
                    raise RuntimeError(f"{method} {path}: {reply.status} {await reply.text()}")
            done += 1

    verb = "removed" if remove else "configured"
    async with Progress("limits", lambda: f"{verb} {done:,}/{count:,} limits"):
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
