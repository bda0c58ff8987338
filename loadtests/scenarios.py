"""Load scenarios: each returns a dict of figures (see ``__main__`` for output)."""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import aiohttp
import orjson

from .broker_process import BrokerProcess, session

BASE = "/api/v1/orchestrator"
JOB_TYPE = "load.noop"


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self._last = self.started

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= 1.0:
            self._last = now
            rate = self.done / (now - self.started)
            print(f"  {self.label}: {self.done:,}/{self.total:,}  {rate:,.0f} jobs/s", flush=True)


async def post(http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any) -> Any:
    async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
        data = await response.read()
        if response.status >= 300:
            raise RuntimeError(f"{url}: {response.status} {data[:300]!r}")
        return orjson.loads(data)


async def submit_all(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    n: int,
    batch: int = 1_000,
    concurrency: int = 4,
) -> float:
    progress = Progress("submit", n)
    job = {"jobType": JOB_TYPE, "payload": {"n": 1}}
    chunks = [min(batch, n - start) for start in range(0, n, batch)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for size in chunks:
        queue.put_nowait(size)

    async def producer() -> None:
        while not queue.empty():
            size = queue.get_nowait()
            await post(http, f"{url}{BASE}/jobs", headers, {"jobs": [job] * size})
            progress.add(size)

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(concurrency)))
    return time.perf_counter() - started


async def burn_down(broker: BrokerProcess, jobs: int, workers: int, batch: int) -> dict[str, Any]:
    """Pre-submit ``jobs``; ``workers`` claim and ack ``batch`` at a time until empty."""
    headers = {"Authorization": f"Bearer {broker.token()}", "Content-Type": "application/json"}
    async with session() as http:
        submit_s = await submit_all(http, broker.url, headers, jobs)
        print(f"submitted {jobs:,} jobs in {submit_s:.2f} s ({jobs / submit_s:,.0f} jobs/s)")
        latencies: list[float] = []
        progress = Progress("drain", jobs)
        claim_body = {"jobTypes": [JOB_TYPE], "maxJobs": batch, "leaseSeconds": 60}

        async def worker(index: int) -> int:
            done = 0
            wid = f"load-{index}"
            t0 = time.perf_counter()
            reply = await post(
                http, f"{broker.url}{BASE}/worker/claim", headers, {"workerId": wid, **claim_body}
            )
            latencies.append(time.perf_counter() - t0)
            claimed = reply["jobs"]
            while claimed:
                results = [
                    {"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"}
                    for j in claimed
                ]
                t0 = time.perf_counter()
                reply = await post(
                    http,
                    f"{broker.url}{BASE}/worker/ack",
                    headers,
                    {"workerId": wid, "results": results, "claim": claim_body},
                )
                latencies.append(time.perf_counter() - t0)
                if any(r["outcome"] != "accepted" for r in reply["results"]):
                    raise RuntimeError(f"ack refused: {reply['results'][:3]}")
                done += len(claimed)
                progress.add(len(claimed))
                claimed = reply["jobs"]
            return done

        broker_cpu0, own_cpu0 = broker.cpu(), own_cpu()
        started = time.perf_counter()
        counts = await asyncio.gather(*(worker(i) for i in range(workers)))
        elapsed = time.perf_counter() - started
        broker_cpu, gen_cpu = broker.cpu() - broker_cpu0, own_cpu() - own_cpu0
    drained = sum(counts)
    if drained != jobs:
        raise RuntimeError(f"drained {drained} of {jobs} jobs")
    return {
        "scenario": "burn-down",
        "jobs": jobs,
        "workers": workers,
        "batch": batch,
        "store": broker.store.split(":")[0],
        "submit_jobs_per_s": round(jobs / submit_s),
        "drain_seconds": round(elapsed, 3),
        "drain_jobs_per_s": round(jobs / elapsed),
        "round_trip_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "round_trip_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "broker_cpu_s": round(broker_cpu, 2),
        "generator_cpu_s": round(gen_cpu, 2),
        "broker_cpu_us_per_job": round(broker_cpu / jobs * 1e6, 2),
        "generator_cpu_us_per_job": round(gen_cpu / jobs * 1e6, 2),
    }


async def single(broker: BrokerProcess, jobs: int, workers: int) -> dict[str, Any]:
    """One job per request: ``workers`` concurrent loops of ack-and-claim with maxJobs 1."""
    return await burn_down(broker, jobs, workers, 1) | {"scenario": "single"}
