"""In-process demo: producers and workers driving the engine, with progress.

Shows the state machine at work without any service: jobs are submitted in
batches, workers claim and acknowledge them in batches (a share of attempts
fail and are retried with backoff, a few leases are abandoned and expire),
and a progress line reports throughput until every job is finished.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

from . import HAVE_NATIVE
from .engine import AckItem, Engine, EngineSettings, JobSpec, states

PROGRESS_EVERY_S = 0.5


def run_demo(
    jobs: int = 200_000,
    batch: int = 100,
    fail_rate: float = 0.02,
    seed: int = 1,
    out: Callable[[str], None] = print,
) -> dict[str, float]:
    """Run ``jobs`` jobs through the engine; returns the final figures."""
    rng = random.Random(seed)
    engine = Engine(EngineSettings(retry_base_ms=5, retry_cap_ms=50, seed=seed))
    kernels = "native" if HAVE_NATIVE else "pure-Python twins"
    out(f"demo: {jobs:,} jobs, batch {batch}, {fail_rate:.0%} failing attempts, {kernels}")
    now = 0
    spec = JobSpec("demo.noop", b'{"hello":"world"}')
    for start in range(0, jobs, 10_000):
        engine.submit(now, "demo", [spec] * min(10_000, jobs - start))
    started = time.perf_counter()
    last_report = started
    finished = 0
    while finished < jobs:
        now += 1
        engine.release_due(now)
        engine.expire_leases(now)
        grant, _ = engine.claim(now, "demo", "worker-1", ["demo.noop"], batch, 20)
        ok_jids, ok_tokens, failed = [], [], []
        for job, token in zip(grant.jobs, grant.tokens, strict=True):
            roll = rng.random()
            if roll < fail_rate:
                failed.append(AckItem(job.jid, token, "failed", error=b'{"class":"flaky"}'))
            elif roll < fail_rate * 1.05:
                continue  # the worker vanished: the lease will expire
            else:
                ok_jids.append(job.jid)
                ok_tokens.append(token)
        engine.complete(now, "demo", ok_jids, ok_tokens)
        engine.ack(now, "demo", failed)
        counts = engine.state_counts
        finished = counts[states.SUCCEEDED] + counts[states.DEAD] + counts[states.CANCELED]
        clock = time.perf_counter()
        if clock - last_report >= PROGRESS_EVERY_S or finished == jobs:
            last_report = clock
            rate = finished / (clock - started)
            out(
                f"  {finished:>9,}/{jobs:,} finished  {rate:>10,.0f} jobs/s  "
                f"ready {counts[states.READY]:,}  pending {counts[states.PENDING]:,}  "
                f"leased {counts[states.LEASED]:,}  dead {counts[states.DEAD]:,}"
            )
    elapsed = time.perf_counter() - started
    figures = {
        "jobs": float(jobs),
        "seconds": elapsed,
        "jobs_per_second": jobs / elapsed,
        "succeeded": float(engine.state_counts[states.SUCCEEDED]),
        "dead": float(engine.state_counts[states.DEAD]),
    }
    out(
        f"demo: {jobs:,} jobs in {elapsed:.2f} s = {figures['jobs_per_second']:,.0f} jobs/s "
        f"({figures['succeeded']:,.0f} succeeded, {figures['dead']:,.0f} dead-lettered)"
    )
    return figures


if __name__ == "__main__":  # pragma: no cover
    run_demo(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
