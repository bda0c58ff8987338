"""``steady``: producers and workers both at full rate for a fixed time.

``producers`` closed loops submit ``submit_batch`` jobs per request; ``workers``
closed loops ack ``batch`` jobs with a nested claim for the next ones (waiting up
to ``wait_ms`` when the queue is momentarily empty). The queue depth
(``orchestrator_queue_depth`` from ``/metrics``) is sampled every ``sample_s``; its
least-squares slope is the backlog growth in jobs/s (positive: producers outrun
workers). On a Postgres ledger the WAL written from the first submission to the
last ack (the workers ack the jobs they hold when the time is up) is reported
too, per job acked by then (``wal.py``).
"""

from __future__ import annotations

import asyncio
import time

import orjson

from .broker_process import BrokerProcess, session
from .common import Client, Json, Meter, Progress, Result, client, job_type, kernels, rate, slope
from .wal import Wal


async def steady(
    broker: BrokerProcess,
    producers: int,
    workers: int,
    duration_s: float,
    submit_batch: int = 100,
    batch: int = 100,
    wait_ms: int = 100,
    sample_s: float = 0.25,
) -> Result:
    kind = job_type("steady")
    body = orjson.dumps({"jobs": [{"jobType": kind, "payload": {"n": 1}}] * submit_batch})
    claim: Json = {"jobTypes": [kind], "maxJobs": batch, "leaseSeconds": 60, "waitMs": wait_ms}
    submitted = acked = 0
    acked_all = 0  # acked plus what was acked after the time was up: the WAL's divisor
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async with session() as http, Wal(broker.store) as wal:
        api = client(http, broker)

        async def producer() -> None:
            nonlocal submitted
            while not stop.is_set():
                await api.post_raw("/jobs", body)
                if not stop.is_set():
                    submitted += submit_batch

        async def worker(index: int) -> None:
            nonlocal acked, acked_all
            wid = f"steady-{index}"
            jobs = await api.claim(wid, kind, batch, wait_ms)
            while not stop.is_set():
                if not jobs:
                    jobs = await api.claim(wid, kind, batch, wait_ms)
                    continue
                nxt = await api.ack(wid, jobs, claim)
                if not stop.is_set():
                    acked += len(jobs)
                acked_all += len(jobs)
                jobs = nxt
            if jobs:  # hand back nothing half-done: ack what is held
                await api.ack(wid, jobs)
                acked_all += len(jobs)

        async def sampler() -> None:
            while not stop.is_set():
                samples.append((time.perf_counter() - started, await api.queue_depth()))
                await asyncio.sleep(sample_s)

        def status() -> str:
            elapsed = time.perf_counter() - started
            depth = int(samples[-1][1]) if samples else 0
            return (
                f"in {rate(submitted, elapsed):,.0f}/s  out {rate(acked, elapsed):,.0f}/s"
                f"  queue {depth:,}"
            )

        await wal.begin()
        meter = Meter(broker)
        started = time.perf_counter()
        async with Progress("steady", status):
            tasks = [asyncio.create_task(producer()) for _ in range(producers)]
            tasks += [asyncio.create_task(worker(i)) for i in range(workers)]
            tasks.append(asyncio.create_task(sampler()))
            await asyncio.wait(tasks, timeout=duration_s, return_when="FIRST_EXCEPTION")
            stop.set()
            elapsed = time.perf_counter() - started
            totals = (submitted, acked)
            measured = meter.figures()
            await asyncio.gather(*tasks)  # raises the first failure, if any
        wal_figures = await wal.figures(acked_all)
        depth_end = await _tidy(broker, api, kind)
    depths = [d for _, d in samples]
    figures: Json = {
        "scenario": "steady",
        "store": broker.store.split(":")[0],
        "kernels": kernels(),
        "producers": producers,
        "workers": workers,
        "submit_batch": submit_batch,
        "batch": batch,
        "duration_s": round(elapsed, 2),
        "submitted": totals[0],
        "acked": totals[1],
        "acked_all": acked_all,
        "in_jobs_per_s": rate(totals[0], elapsed),
        "out_jobs_per_s": rate(totals[1], elapsed),
        "backlog_slope_jobs_per_s": round(slope(samples), 1),
        "queue_depth_samples": len(samples),
        "queue_depth_max": int(max(depths, default=0)),
        "queue_depth_end": depth_end,
        "refused_429_503": api.refused,
        **measured,
        **wal_figures,
    }
    return Result("steady", figures, series={"depth": depths})


async def _tidy(broker: BrokerProcess, api: Client, kind: str) -> int:
    """The queue depth at the end; in a ledger that outlives the run (``--store``), claim
    and ack what is left of this run's jobs (not measured) so no backlog stays behind."""
    depth = await api.queue_depth()
    if depth == 0 or str(broker.dir) in broker.store:
        return depth
    jobs = await api.claim("steady-clear", kind, 1000)
    while jobs:
        jobs = await api.ack("steady-clear", jobs, {"jobTypes": [kind], "maxJobs": 1000})
    return depth
