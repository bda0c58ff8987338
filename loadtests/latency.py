"""Latency under load (``latency``) and on an idle broker (``wakeup``).

Both carry the send time (``time.time_ns()``) in the job's payload, so a worker
computes submit→claim the moment a claim reply arrives (same process, same clock).
"""

from __future__ import annotations

import asyncio
import time

import orjson

from .broker_process import BrokerProcess, session
from .common import (
    Json,
    Meter,
    Progress,
    Result,
    client,
    job_type,
    kernels,
    quantiles_ms,
    rate,
)

POINTS = ("p50", "p99", "p999", "max")
SETTLE_S = 10.0  # how long submitted jobs may take to be claimed after the last submission
PARK_S = 0.2  # time given to the workers' first long polls to reach the broker and park


def _common(broker: BrokerProcess, scenario: str) -> Json:
    return {"scenario": scenario, "store": broker.store.split(":")[0], "kernels": kernels()}


async def latency(
    broker: BrokerProcess,
    jobs_per_s: float,
    duration_s: float,
    workers: int,
    batch: int = 10,
    wait_ms: int = 1_000,
) -> Result:
    """Open loop: jobs are sent on a fixed schedule whatever the replies do.

    At each tick the jobs due since the last send go out in one request (one job
    per request up to about 1,000 jobs/s). Workers long-poll with ``waitMs`` and
    ack each claimed batch at once; claim→ack is that ack's round trip."""
    kind = job_type("latency")
    total = max(1, int(jobs_per_s * duration_s))
    s2c: list[float] = []
    c2a: list[float] = []
    submit_rtt: list[float] = []
    lag: list[float] = []
    sent = 0
    all_acked = asyncio.Event()

    async with session() as http:
        api = client(http, broker)

        async def send(body: bytes) -> None:
            t0 = time.perf_counter()
            await api.post_raw("/jobs", body)
            submit_rtt.append(time.perf_counter() - t0)

        async def worker(index: int) -> None:
            wid = f"latency-{index}"
            while True:
                jobs = await api.claim(wid, kind, batch, wait_ms)
                if not jobs:
                    continue
                received = time.time_ns()
                s2c.extend((received - j["payload"]["ts"]) / 1e9 for j in jobs)
                await api.ack(wid, jobs)
                c2a.extend([(time.time_ns() - received) / 1e9] * len(jobs))
                if len(c2a) >= total:
                    all_acked.set()

        async def producer() -> None:
            nonlocal sent
            pending: set[asyncio.Task[None]] = set()
            while sent < total:
                now = time.perf_counter()
                due = min(total, int((now - started) * jobs_per_s) + 1) - sent
                if due > 0:
                    lag.append(now - (started + sent / jobs_per_s))
                    job = {"jobType": kind, "payload": {"ts": time.time_ns()}}
                    task = asyncio.create_task(send(orjson.dumps({"jobs": [job] * due})))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    sent += due
                await asyncio.sleep(max(0.0, started + sent / jobs_per_s - time.perf_counter()))
            await asyncio.gather(*pending)

        def status() -> str:
            elapsed = time.perf_counter() - started
            p50 = quantiles_ms(s2c[-2000:], "s", ("p50",))["s_p50_ms"]
            return (
                f"sent {sent:,}/{total:,} ({rate(sent, elapsed):,.0f}/s)  claimed {len(s2c):,}"
                f"  acked {len(c2a):,}  recent submit→claim p50 {p50:.1f} ms"
            )

        meter = Meter(broker)
        started = time.perf_counter()
        async with Progress("latency", status):
            pool = [asyncio.create_task(worker(i)) for i in range(workers)]
            await producer()
            send_s = time.perf_counter() - started
            await _settle(all_acked, pool)
        measured = meter.figures()
    figures: Json = _common(broker, "latency") | {
        "target_jobs_per_s": jobs_per_s,
        "achieved_jobs_per_s": rate(total, send_s),
        "jobs": total,
        "submit_requests": len(submit_rtt),
        "workers": workers,
        "batch": batch,
        "wait_ms": wait_ms,
        **quantiles_ms(s2c, "submit_to_claim", POINTS),
        **quantiles_ms(c2a, "claim_to_ack", POINTS),
        **quantiles_ms(submit_rtt, "submit_round_trip", ("p50", "p99")),
        "schedule_lag_max_ms": round(max(lag, default=0.0) * 1000, 2),
        "refused_429_503": api.refused,
        **measured,
    }
    ms = 1000.0
    series = {"submit_to_claim": [v * ms for v in s2c], "claim_to_ack": [v * ms for v in c2a]}
    return Result("latency", figures, series=series)


async def _settle(finished: asyncio.Event, pool: list[asyncio.Task[None]]) -> None:
    """Wait until every job is acked (a worker failing fails the run), then stop the pool."""
    waiter = asyncio.create_task(finished.wait())
    try:
        done, _ = await asyncio.wait(
            [waiter, *pool], timeout=SETTLE_S, return_when="FIRST_COMPLETED"
        )
        for task in done:
            if task is not waiter:
                task.result()  # a worker only ends by failing
        if waiter not in done:
            raise TimeoutError(f"jobs still unclaimed {SETTLE_S:.0f} s after the last submission")
    finally:
        for task in (waiter, *pool):
            task.cancel()
        await asyncio.gather(waiter, *pool, return_exceptions=True)


async def wakeup(
    broker: BrokerProcess,
    samples: int,
    workers: int,
    pause_s: float = 0.05,
    wait_ms: int = 5_000,
) -> Result:
    """Workers park on an empty queue; one job at a time is sent after a pause.

    Measured: from just before the submission is sent to the claim reply arriving
    at the worker holding it."""
    kind = job_type("wakeup")
    woken: list[float] = []
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async with session() as http:
        api = client(http, broker)

        async def worker(index: int) -> None:
            wid = f"wakeup-{index}"
            while True:
                jobs = await api.claim(wid, kind, 1, wait_ms)
                received = time.time_ns()
                for job in jobs:
                    arrived.put_nowait((received - job["payload"]["ts"]) / 1e9)
                if jobs:
                    await api.ack(wid, jobs)

        def status() -> str:
            last = f"{woken[-1] * 1000:.2f} ms" if woken else "-"
            return f"samples {len(woken):,}/{samples:,}  last {last}"

        meter = Meter(broker)
        async with Progress("wakeup", status):
            pool = [asyncio.create_task(worker(i)) for i in range(workers)]
            try:
                await asyncio.sleep(PARK_S)
                for i in range(samples):
                    await asyncio.sleep(pause_s)
                    job = {"jobType": kind, "payload": {"ts": time.time_ns(), "i": i}}
                    await api.post("/jobs", {"jobs": [job]})
                    woken.append(await _next(arrived, pool))
            finally:
                for task in pool:
                    task.cancel()
                await asyncio.gather(*pool, return_exceptions=True)
        measured = meter.figures()
    figures: Json = _common(broker, "wakeup") | {
        "samples": len(woken),
        "workers": workers,
        "pause_ms": round(pause_s * 1000, 1),
        "wait_ms": wait_ms,
        **quantiles_ms(woken, "wakeup", ("p50", "p90", "p99", "max")),
        **measured,
    }
    return Result("wakeup", figures, series={"wakeup": [v * 1000 for v in woken]})


async def _next(arrived: asyncio.Queue[float], pool: list[asyncio.Task[None]]) -> float:
    getter = asyncio.create_task(arrived.get())
    done, _ = await asyncio.wait([getter, *pool], timeout=SETTLE_S, return_when="FIRST_COMPLETED")
    if getter not in done:
        getter.cancel()
        for task in done:
            task.result()
        raise TimeoutError("a submitted job was not claimed")
    return getter.result()
