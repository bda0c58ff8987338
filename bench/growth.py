"""How cost grows with work: claim + complete per job, memory per queued job, recovery time.

    python -m bench.growth [--queued 1000,100000,1000000,10000000] [--repeat 3]
                           [--recovered 10000,100000,1000000] [--plot growth.png]

For each queue depth, a fresh subprocess (native kernels) fills an engine and
reports the RSS it grew by (per job: the bookkeeping of a queued job, payloads
sharing one empty bytes object), then times rounds of claim 100 + complete 100
(each refilled by 100 untimed submissions, so the depth stays put) and reports
the median per job, the lowest median of its ten windows of 200 rounds (a
shared machine's noise comes in spells of seconds and only ever adds time, so
the quietest stretch is the steadiest figure of what the work costs) and the
lowest round. With ``--repeat R`` the depths are measured R times in turn
(1k, 1M, 10M, 1k, …), so a slow spell falls on every depth alike: the median
and the bytes per job are then the median of the runs', the quietest window
and the lowest round the lowest of the runs'. Recovery
is ``bench.recovery`` at each live-job count (a fresh Postgres database,
``Broker.start()`` timed). Prints a Markdown table and,
with ``--plot``, draws the three curves on log-scaled job counts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time

ROUNDS = 2_000
WINDOW = 200  # rounds per window; the quietest window's median is reported too
BATCH = 100
MEMORY_FROM = 100_000  # below this, RSS moves in steps too coarse for a per-job figure


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def measure_queue(queued: int) -> dict[str, float]:
    """In this process: RSS growth per queued job and claim+complete µs per job."""
    from bench.engine_setup import JOB_TYPE, SPEC, TENANT, filled_engine
    from bench.memory_per_job import rss_bytes

    gc.collect()
    before = rss_bytes()
    engine = filled_engine("native", queued)
    gc.collect()
    grown = rss_bytes() - before
    refill = [SPEC] * BATCH
    took = []
    for now in range(1, ROUNDS + 1):
        engine.submit(now, TENANT, refill)
        t0 = time.perf_counter()
        grant, _ = engine.claim(now, TENANT, "worker-1", [JOB_TYPE], BATCH, 30_000)
        engine.complete(now, TENANT, [job.jid for job in grant.jobs], grant.tokens)
        took.append(time.perf_counter() - t0)
        assert len(grant.jobs) == BATCH
    return {
        "queued": queued,
        "bytes_per_job": round(grown / queued, 1),
        "us_per_job": round(statistics.median(took) / BATCH * 1e6, 3),
        "us_per_job_quiet": round(
            min(statistics.median(took[i : i + WINDOW]) for i in range(0, ROUNDS, WINDOW))
            / BATCH * 1e6, 3,
        ),  # fmt: skip
        "us_per_job_min": round(min(took) / BATCH * 1e6, 3),
    }


def queue_figures(queued: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.growth", "--child", str(queued)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


def repeated_figures(depths: list[int], repeat: int) -> list[dict[str, float]]:
    """Each depth measured ``repeat`` times, the depths taken in turn."""
    runs: dict[int, list[dict[str, float]]] = {queued: [] for queued in depths}
    for turn in range(1, repeat + 1):
        for queued in depths:
            print(f"… {queued:,} queued (run {turn} of {repeat})", file=sys.stderr)
            runs[queued].append(queue_figures(queued))
            print(f"  {runs[queued][-1]['us_per_job']} µs/job", file=sys.stderr)
    return [
        {
            "queued": queued,
            "bytes_per_job": round(statistics.median(r["bytes_per_job"] for r in found), 1),
            "us_per_job": round(statistics.median(r["us_per_job"] for r in found), 3),
            "us_per_job_quiet": min(r["us_per_job_quiet"] for r in found),
            "us_per_job_min": min(r["us_per_job_min"] for r in found),
        }
        for queued, found in runs.items()
    ]


def plot(path: str, queues: list[dict[str, float]], recoveries: list[tuple[int, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    depth = [q["queued"] for q in queues]
    axes[0].plot(depth, [q["us_per_job"] for q in queues], "o-", label="median")
    axes[0].plot(depth, [q["us_per_job_quiet"] for q in queues], "o-", label="quietest 200 rounds")
    axes[0].plot(depth, [q["us_per_job_min"] for q in queues], "o--", label="min")
    axes[0].set(xscale="log", xlabel="queued jobs", ylabel="µs per job", ylim=(0, None),
                title="engine claim + complete, batch 100")  # fmt: skip
    axes[0].legend()
    sized = [q for q in queues if q["queued"] >= MEMORY_FROM]
    axes[1].plot([q["queued"] for q in sized], [q["bytes_per_job"] for q in sized], "o-")
    axes[1].set(xscale="log", xlabel="queued jobs", ylabel="bytes per job", ylim=(0, None),
                title="memory per queued job (RSS)")  # fmt: skip
    if recoveries:
        axes[2].plot([n for n, _ in recoveries], [s for _, s in recoveries], "o-")
    axes[2].set(xscale="log", yscale="log", xlabel="live jobs", ylabel="seconds",
                title="recovery on Postgres (Broker.start)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=_sizes, default=[1_000, 100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per depth, in turn")
    parser.add_argument("--recovered", type=_sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--plot", help="PNG file for the three curves")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure_queue(args.child)))
        return
    from bench.recovery import recovery_seconds

    queues = repeated_figures(args.queued, max(1, args.repeat))
    recoveries = []
    for live in args.recovered:
        print(f"… recovering {live:,} live jobs", file=sys.stderr)
        recoveries.append((live, asyncio.run(recovery_seconds(live, args.store))))
    base, quiet = queues[0]["us_per_job"], queues[0]["us_per_job_quiet"]
    print("| queued jobs | claim+complete µs/job (median) | vs the smallest |"
          " quietest 200 rounds | vs the smallest | lowest round | bytes/job |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for q in queues:
        size = q["bytes_per_job"] if q["queued"] >= MEMORY_FROM else "—"
        print(f"| {q['queued']:,} | {q['us_per_job']} | {q['us_per_job'] / base:.2f}x |"
              f" {q['us_per_job_quiet']} | {q['us_per_job_quiet'] / quiet:.2f}x |"
              f" {q['us_per_job_min']} | {size} |")  # fmt: skip
    print()
    print("| live jobs | recovery s | jobs/s |")
    print("| ---: | ---: | ---: |")
    for live, seconds in recoveries:
        print(f"| {live:,} | {seconds:.2f} | {live / seconds:,.0f} |")
    if args.plot:
        plot(args.plot, queues, recoveries)
        print(f"\nplotted {args.plot}")


if __name__ == "__main__":
    main()
