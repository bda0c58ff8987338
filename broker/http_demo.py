"""``python -m broker demo``: a real broker with a built-in producer and workers.

Starts the broker (HTTP API, SQLite ledger under ``./var`` by default) on a
free port, submits jobs with the SDK ``Producer``, drains them with SDK
``Worker``s (a share of attempts fail and are retried), prints a progress
line, and ends with the throughput. Everything runs in this one process and
one event loop, so the figure is end to end on a shared CPU, not a benchmark.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import HAVE_NATIVE, states
from .api.auth import issue_token
from .config import Config
from .sdk import Producer, Worker
from .server import Server

JOB_TYPE = "demo.noop"
SUBMIT_BATCH = 1_000


async def demo(
    config: Config,
    jobs: int,
    workers: int,
    batch: int,
    fail_rate: float,
    out: Callable[[str], None] = print,
) -> dict[str, float]:
    server = Server(config)
    await server.start()
    kernels = "native kernels" if HAVE_NATIVE else "pure-Python twins"
    out(f"demo: broker on {server.url}, store {server.broker.ledger.url}, {kernels}")
    out(
        f"demo: {jobs:,} jobs, {workers} workers claiming {batch} at a time, "
        f"{fail_rate:.0%} of attempts fail and are retried"
    )
    token = issue_token(server.keys, "demo", "orch:read orch:operate orch:worker")
    rng = random.Random(7)

    async def handler(job: dict[str, Any]) -> dict[str, Any]:
        if rng.random() < fail_rate:
            raise RuntimeError("flaky upstream")
        return {"ok": True}

    pool = [
        Worker(
            server.url,
            token,
            f"demo-worker-{i}",
            [JOB_TYPE],
            handler,
            concurrency=batch,
            batch=batch,
            wait_ms=1_000,
        )
        for i in range(workers)
    ]
    counts = server.broker.engine.state_counts
    finished_before = counts[states.SUCCEEDED] + counts[states.DEAD]
    started = time.perf_counter()
    running = [asyncio.create_task(worker.run()) for worker in pool]
    try:
        async with Producer(server.url, token) as producer:
            for start in range(0, jobs, SUBMIT_BATCH):
                size = min(SUBMIT_BATCH, jobs - start)
                await producer.submit(
                    [{"jobType": JOB_TYPE, "payload": {"n": start + i}} for i in range(size)]
                )
        finished = 0
        while finished < jobs:
            await asyncio.sleep(0.5)
            counts = server.broker.engine.state_counts
            finished = counts[states.SUCCEEDED] + counts[states.DEAD] - finished_before
            elapsed = time.perf_counter() - started
            out(
                f"  {finished:>9,}/{jobs:,} finished  {finished / elapsed:>9,.0f} jobs/s  "
                f"ready {counts[states.READY]:,}  leased {counts[states.LEASED]:,}  "
                f"retrying {counts[states.PENDING]:,}"
            )
    finally:
        for worker in pool:
            worker.stop()
        await asyncio.gather(*running, return_exceptions=True)
        await server.stop()
    elapsed = time.perf_counter() - started
    retried = sum(worker.failed for worker in pool)
    out(
        f"demo: {jobs:,} jobs finished in {elapsed:.1f} s = {jobs / elapsed:,.0f} jobs/s "
        f"end to end ({retried:,} failed attempts retried); ledger {server.broker.ledger.url}"
    )
    return {"jobs": float(jobs), "seconds": elapsed, "jobs_per_second": jobs / elapsed}


def run_http_demo(config: Config, jobs: int, workers: int, batch: int, fail_rate: float) -> int:
    import logging

    import uvloop

    # the demo's failures are staged: report them in the progress line, not as tracebacks
    logging.getLogger("broker.sdk").setLevel(logging.ERROR)
    uvloop.run(demo(config, jobs, workers, batch, fail_rate))
    return 0


def demo_config(config: Config, port_given: bool, store_given: bool) -> Config:
    """The demo's own ledger and a free port, unless the user chose them."""
    engine = replace(config.service.engine, retry_base_ms=50, retry_cap_ms=1_000)
    return replace(
        config,
        port=config.port if port_given else 0,
        store=config.store if store_given else f"sqlite:///{config.var_dir}/demo.db",
        service=replace(config.service, engine=engine),
    )
