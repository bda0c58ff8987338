"""DAG runs through the engine: time to the last job claimable, and claim+ack rate.

    python -m bench.dag_runs [--jobs 100000] [--impl native|twin|both]

Two shapes of ``--jobs`` jobs each: a wide fan-out/fan-in (one root, every
other job its child, one sink waiting on all of them) and chains of 100
(``jobs / 100`` independent chains). One ``create_run`` submits the run; then
claims of 100 and completions of 100 drain it. Reported: the submission time,
the time from submission until the last job was claimable, and claim+ack jobs/s.
Chains are also run at a tenth of the size: completing a parent must cost
O(its children), so the per-job cost should not grow with the run.
"""

from __future__ import annotations

import argparse
import time

from bench.engine_setup import kernels
from broker.engine import Engine, JobMeta, JobSpec

TENANT = "t"
TYPE = "step"


def fan(n: int) -> list[JobSpec]:
    def spec(key: str, *deps: str) -> JobSpec:
        return JobSpec(TYPE, b"{}", meta=JobMeta(key=key), depends_on=deps)

    middle = [spec(f"m{i}", "root") for i in range(n - 2)]
    return [spec("root"), *middle, spec("sink", *(f"m{i}" for i in range(n - 2)))]


def chains(n: int, length: int = 100) -> list[JobSpec]:
    specs = []
    for c in range(n // length):
        for s in range(length):
            deps = (f"c{c}s{s - 1}",) if s else ()
            specs.append(JobSpec(TYPE, b"{}", meta=JobMeta(key=f"c{c}s{s}"), depends_on=deps))
    return specs


def drive(impl: str, specs: list[JobSpec]) -> dict[str, float]:
    engine = Engine(kernels=kernels(impl))
    start = time.perf_counter()
    engine.create_run(0, TENANT, "bench", None, specs)
    submitted = time.perf_counter()
    done = 0
    last_claimable = submitted
    while True:
        grant, _ = engine.claim(0, TENANT, "w", [TYPE], 100, 60_000)
        if not grant.jobs:
            break
        last_claimable = time.perf_counter()
        engine.complete(0, TENANT, [job.jid for job in grant.jobs], grant.tokens)
        done += len(grant.jobs)
    end = time.perf_counter()
    assert done == len(specs) and not engine.runs.live, "the run did not finish"
    return {
        "submit_s": submitted - start,
        "to_last_claimable_s": last_claimable - start,
        "drain_jobs_per_s": done / (end - submitted),
        "us_per_job": (end - submitted) / done * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--impl", choices=["native", "twin", "both"], default="both")
    args = parser.parse_args()
    impls = ["native", "twin"] if args.impl == "both" else [args.impl]
    shapes = [
        (f"fan-out/fan-in {args.jobs:,}", fan(args.jobs)),
        (f"{args.jobs // 100:,} chains of 100", chains(args.jobs)),
        (f"{args.jobs // 1000:,} chains of 100", chains(args.jobs // 10)),
    ]
    print("| shape | kernels | submit s | submit → last claimable s | claim+ack jobs/s | µs/job |")
    print("|---|---|---:|---:|---:|---:|")
    for name, specs in shapes:
        for impl in impls:
            r = drive(impl, specs)
            print(
                f"| {name} | {impl} | {r['submit_s']:.2f} | {r['to_last_claimable_s']:.2f} "
                f"| {r['drain_jobs_per_s']:,.0f} | {r['us_per_job']:.2f} |"
            )


if __name__ == "__main__":
    main()
