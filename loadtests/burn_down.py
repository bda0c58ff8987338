"""Closed-loop drains: ``burn-down``, ``single`` and ``payload``.

The jobs are submitted first (batches of up to 1,000 jobs or 8 MB, four requests
in flight); then ``workers`` loops claim ``batch`` jobs and ack them with a nested
claim for the next ones (one round trip per batch) until the queue is empty.
On a Postgres ledger the WAL written from the first submission to the last ack
is reported too (``wal.py``).
"""

from __future__ import annotations

import asyncio
import time

import orjson

from .broker_process import BrokerProcess, session
from .common import Client, Json, Meter, Progress, Result, client, job_type, kernels
from .common import quantiles_ms as q_ms
from .wal import Wal

SUBMIT_BYTES = 8_000_000  # a submission request carries at most this much payload


def make_payload(size: int) -> Json:
    """A payload whose JSON encoding is exactly ``size`` bytes (at least 9)."""
    if size <= 0:
        return {"n": 1}
    return {"b": "x" * max(1, size - 8)}


async def submit_all(
    api: Client, kind: str, n: int, payload: Json, batch: int = 1_000, concurrency: int = 4
) -> float:
    """Submit ``n`` jobs of ``kind``; return the seconds it took."""
    per_job = len(orjson.dumps(payload))
    batch = max(1, min(batch, SUBMIT_BYTES // per_job))
    job = {"jobType": kind, "payload": payload}
    bodies: dict[int, bytes] = {}
    sizes = [min(batch, n - start) for start in range(0, n, batch)]
    done = 0

    async def producer() -> None:
        nonlocal done
        while sizes:
            size = sizes.pop()
            body = bodies.get(size)
            if body is None:
                body = bodies[size] = orjson.dumps({"jobs": [job] * size})
            await api.post_raw("/jobs", body)
            done += size

    started = time.perf_counter()

    def status() -> str:
        return f"submitted {done:,}/{n:,}  {done / (time.perf_counter() - started):,.0f} jobs/s"

    async with Progress("submit", status):
        await asyncio.gather(*(producer() for _ in range(concurrency)))
    return time.perf_counter() - started


async def drain(
    api: Client, kind: str, n: int, workers: int, batch: int
) -> tuple[float, list[float]]:
    """``workers`` ack-and-claim loops until the queue is empty: (seconds, round trips)."""
    trips: list[float] = []
    done = 0
    claim: Json = {"jobTypes": [kind], "maxJobs": batch, "leaseSeconds": 60}

    async def worker(index: int) -> None:
        nonlocal done
        wid = f"load-{index}"
        t0 = time.perf_counter()
        jobs = await api.claim(wid, kind, batch)
        trips.append(time.perf_counter() - t0)
        while jobs:
            t0 = time.perf_counter()
            nxt = await api.ack(wid, jobs, claim)
            trips.append(time.perf_counter() - t0)
            done += len(jobs)
            jobs = nxt

    started = time.perf_counter()

    def status() -> str:
        return f"drained {done:,}/{n:,}  {done / (time.perf_counter() - started):,.0f} jobs/s"

    async with Progress("drain", status):
        await asyncio.gather(*(worker(i) for i in range(workers)))
    if done != n:
        raise RuntimeError(f"drained {done} of {n} jobs")
    return time.perf_counter() - started, trips


async def burn_down(
    broker: BrokerProcess,
    jobs: int,
    workers: int,
    batch: int,
    payload_bytes: int = 0,
    scenario: str = "burn-down",
) -> Result:
    """Pre-submit ``jobs``; ``workers`` claim and ack ``batch`` at a time until empty."""
    kind = job_type(scenario)
    payload = make_payload(payload_bytes)
    size = len(orjson.dumps(payload))
    async with session() as http, Wal(broker.store) as wal:
        api = client(http, broker)
        await wal.begin()
        submit_meter = Meter(broker)
        submit_s = await submit_all(api, kind, jobs, payload)
        submitted = submit_meter.figures("submit_")
        await wal.mark()
        drain_meter = Meter(broker)
        drain_s, trips = await drain(api, kind, jobs, workers, batch)
        drained = drain_meter.figures("drain_")
        wal_figures = await wal.figures(jobs)
    figures: Json = {
        "scenario": scenario,
        "store": broker.store.split(":")[0],
        "kernels": kernels(),
        "jobs": jobs,
        "workers": workers,
        "batch": batch,
        "payload_bytes": size,
        "submit_jobs_per_s": round(jobs / submit_s),
        "drain_jobs_per_s": round(jobs / drain_s),
        **q_ms(trips, "round_trip", ("p50", "p99", "max")),
    }
    if payload_bytes > 0:
        figures["submit_mb_per_s"] = round(jobs * size / submit_s / 1e6, 2)
        figures["drain_mb_per_s"] = round(jobs * size / drain_s / 1e6, 2)
    figures |= submitted | drained
    figures["broker_cpu_us_per_job"] = round(drained["drain_broker_cpu_s"] / jobs * 1e6, 1)
    figures["generator_cpu_us_per_job"] = round(drained["drain_generator_cpu_s"] / jobs * 1e6, 1)
    if "drain_postgres_cpu_s" in drained:
        figures["postgres_cpu_us_per_job"] = round(drained["drain_postgres_cpu_s"] / jobs * 1e6, 1)
    figures["refused_429_503"] = api.refused
    figures |= wal_figures
    return Result(scenario, figures)


def sweep(results: list[Result]) -> Result:
    """Burn-downs at several batch sizes as one result: one row per batch size."""
    columns: tuple[str, ...] = (
        "batch",
        "drain_jobs_per_s",
        "round_trip_p50_ms",
        "round_trip_p99_ms",
        "drain_broker_cpu_per_wall",
        "drain_generator_cpu_per_wall",
        "broker_cpu_us_per_job",
    )
    first = results[0].figures
    if "wal_bytes_per_job" in first:  # a Postgres ledger
        columns += ("wal_bytes_per_job", "wal_fold_bytes_per_job")
    rows = [{c: r.figures[c] for c in columns} for r in results]
    best = max(results, key=lambda r: int(r.figures["drain_jobs_per_s"]))
    figures: Json = {
        "scenario": "burn-down",
        "store": first["store"],
        "kernels": first["kernels"],
        "jobs": first["jobs"],
        "workers": first["workers"],
        "batches": ",".join(str(r.figures["batch"]) for r in results),
        "best_batch": best.figures["batch"],
        "best_drain_jobs_per_s": best.figures["drain_jobs_per_s"],
        "drain_broker_cpu_s_all_runs": round(
            sum(r.figures["drain_broker_cpu_s"] for r in results), 2
        ),
        "drain_generator_cpu_s_all_runs": round(
            sum(r.figures["drain_generator_cpu_s"] for r in results), 2
        ),
    }
    return Result("burn-down", figures, rows=rows)
