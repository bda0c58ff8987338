"""``python -m loadtests <scenario> [options]``: argument parsing and the run loop.

Every run starts its own broker subprocess (``broker_process.py``), runs the
scenario on uvloop, stops the broker and deletes its state directory (kept, with
its log, when the run fails), then writes the result (``report.py``).
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from . import report
from .broker_process import BrokerProcess
from .burn_down import burn_down, sweep
from .common import Result
from .latency import latency, wakeup
from .limits import limits
from .steady import steady
from .tenants import tenants
from .versus import check_harness, versus

RESULTS = Path(__file__).parent / "results"
PLOT_BATCHES = (1, 10, 100, 1000)
#: the harness's peers that ``versus`` runs by default: the fastest durable one
#: (graphile-worker), the fastest in memory (beanstalkd), and two more
PEERS = ("graphile_worker", "beanstalkd", "nats_jetstream", "pgqueuer")
Scenario = Callable[[BrokerProcess], Coroutine[Any, Any, Result]]


def _batches(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if not values or not all(1 <= v <= 1000 for v in values):
        raise argparse.ArgumentTypeError("batch sizes are 1..1000")
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _batch(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("maxJobs is 1..1000")
    return value


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("a comma-separated list of names")
    return names


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("a fraction between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests", description="Load scenarios against a broker subprocess."
    )
    sub = parser.add_subparsers(dest="scenario", required=True)
    add = sub.add_parser

    p = add("burn-down", help="pre-submit N jobs; W workers claim+ack k at a time until empty")
    p.add_argument("--jobs", type=_positive, default=100_000)
    p.add_argument("--workers", type=_positive, default=4)
    p.add_argument("--batch", type=_batch, default=100, help="jobs per claim (maxJobs)")
    p.add_argument("--batches", type=_batches, help="run once per batch size, e.g. 1,10,100,1000")
    p.add_argument("--plot", action="store_true", help="PNG of throughput vs batch size")

    p = add("single", help="one job per request: ack-and-claim round trips with maxJobs 1")
    p.add_argument("--jobs", type=_positive, default=20_000)
    p.add_argument("--workers", type=_positive, default=64)

    p = add("steady", help="P producers and W workers at full rate for T seconds")
    p.add_argument("--producers", type=_positive, default=2)
    p.add_argument("--workers", type=_positive, default=4)
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--submit-batch", type=_positive, default=100, help="jobs per submission")
    p.add_argument("--batch", type=_batch, default=100, help="jobs per claim")
    p.add_argument("--wait-ms", type=int, default=100, help="long poll of the nested claim")

    p = add("latency", help="open-loop submissions at --rate while workers long-poll")
    p.add_argument("--rate", type=float, default=1_000.0, help="jobs/s")
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--workers", type=_positive, default=4)
    p.add_argument("--batch", type=_batch, default=10, help="jobs per claim")
    p.add_argument("--wait-ms", type=int, default=1_000, help="long poll of each claim")
    p.add_argument("--plot", action="store_true", help="PNG of the latency CDFs")

    p = add("wakeup", help="parked long polls; one job at a time; send → claim reply")
    p.add_argument("--samples", type=_positive, default=200)
    p.add_argument("--workers", type=_positive, default=4)
    p.add_argument("--pause-ms", type=float, default=50.0, help="pause before each job")
    p.add_argument("--wait-ms", type=int, default=5_000, help="long poll of each claim")
    p.add_argument("--plot", action="store_true", help="PNG of the wake-up CDF")

    p = add("tenants", help="one noisy tenant with most jobs, many quiet ones")
    p.add_argument("--tenants", type=_positive, default=1_000)
    p.add_argument("--jobs", type=_positive, default=50_000, help="all tenants together")
    p.add_argument("--noisy-share", type=_share, default=0.9, help="the noisy tenant's jobs")
    p.add_argument("--workers", type=_positive, default=2, help="the noisy tenant's workers")
    p.add_argument("--batch", type=_batch, default=100, help="the noisy workers' claims")
    p.add_argument("--wait-ms", type=int, default=5_000, help="quiet workers' long polls")
    p.add_argument("--quiet-delay", type=float, default=0.2, help="s after the noisy drain")

    p = add("limits", help="drain with limits on every tenant and source vs none, one run")
    p.add_argument("--tenants", type=_positive, default=1_000)
    p.add_argument("--jobs", type=_positive, default=100_000, help="all tenants together")
    p.add_argument("--hosts-per-tenant", type=_positive, default=10)
    p.add_argument("--workers", type=_positive, default=4)
    p.add_argument("--batch", type=_batch, default=100)

    p = add("payload", help="burn-down with large payloads; jobs/s and MB/s")
    p.add_argument("--jobs", type=_positive, default=2_000)
    p.add_argument("--workers", type=_positive, default=2)
    p.add_argument("--batch", type=_batch, default=10)
    p.add_argument(
        "--payload-bytes", type=_positive, default=64 * 1024, help="encoded payload size"
    )

    p = add("versus", help="the broker against peer job queues, rounds interleaved")
    p.add_argument("--peers-dir", type=Path, required=True, help="a set-up copy of ../shared/peers")
    p.add_argument("--peers", type=_names, default=list(PEERS), help="harness peer names")
    p.add_argument("--stores", type=_names, default=["sqlite"], help="sqlite and/or store URLs")
    p.add_argument("--rounds", type=_positive, default=3)
    p.add_argument("--jobs", type=_positive, default=20_000, help="per contender and round")
    p.add_argument("--workers", type=_positive, default=4)
    p.add_argument("--batch", type=_batch, default=100)

    for name, p in sub.choices.items():
        if name != "versus":  # which takes --stores
            p.add_argument("--store", help="store URL (default: SQLite in a temp dir)")
        p.add_argument("--out", type=Path, default=RESULTS, help=f"(default {RESULTS})")
    return parser


def scenario(args: argparse.Namespace) -> Scenario:
    """The scenario coroutine for parsed arguments (burn-down sweeps excepted)."""
    a = args
    match a.scenario:
        case "burn-down":
            return lambda b: burn_down(b, a.jobs, a.workers, a.batch)
        case "single":
            return lambda b: burn_down(b, a.jobs, a.workers, 1, scenario="single")
        case "steady":
            return lambda b: steady(
                b, a.producers, a.workers, a.duration, a.submit_batch, a.batch, a.wait_ms
            )
        case "latency":
            return lambda b: latency(b, a.rate, a.duration, a.workers, a.batch, a.wait_ms)
        case "wakeup":
            return lambda b: wakeup(b, a.samples, a.workers, a.pause_ms / 1000, a.wait_ms)
        case "tenants":
            return lambda b: tenants(
                b, a.tenants, a.jobs, a.noisy_share, a.workers, a.batch, a.wait_ms, a.quiet_delay
            )
        case "limits":
            return lambda b: limits(b, a.tenants, a.jobs, a.hosts_per_tenant, a.workers, a.batch)
        case "payload":
            return lambda b: burn_down(
                b, a.jobs, a.workers, a.batch, a.payload_bytes, scenario="payload"
            )
    raise ValueError(f"unknown scenario {a.scenario}")


def run(store: str | None, make: Scenario) -> Result:
    """One broker subprocess, one scenario on uvloop."""
    import uvloop

    broker = BrokerProcess(store)
    broker.start()
    print(f"broker pid {broker.proc.pid if broker.proc else '?'} on {broker.url}", file=sys.stderr)
    try:
        result = uvloop.run(make(broker))
    except BaseException:
        broker.stop()
        print(f"broker state and log kept in {broker.dir}", file=sys.stderr)
        raise
    broker.remove()
    return result


async def _burn(jobs: int, workers: int, batch: int, broker: BrokerProcess) -> Result:
    return await burn_down(broker, jobs, workers, batch)


def _raise_fd_limit() -> None:
    """Long polls hold one connection each: allow as many descriptors as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run the scenario the arguments name; return the files written."""
    args = build_parser().parse_args(argv)
    _raise_fd_limit()
    plot = getattr(args, "plot", False)
    if args.scenario == "versus":
        check_harness(args.peers_dir)
        stores = [None if store == "sqlite" else store for store in args.stores]
        burn = partial(_burn, args.jobs, args.workers, args.batch)
        result = versus(
            args.peers_dir, args.peers, stores, args.jobs, args.rounds, lambda s: run(s, burn)
        )
    elif args.scenario == "burn-down" and (plot or args.batches):
        runs = []
        for batch in args.batches or PLOT_BATCHES:
            print(f"burn-down, batch {batch}", file=sys.stderr)
            runs.append(run(args.store, partial(_burn, args.jobs, args.workers, batch)))
        result = sweep(runs)
    else:
        result = run(args.store, scenario(args))
    files = report.write(result, args.out)
    if plot:
        files.append(_plot(result, files[0].with_suffix(".png")))
        print(f"plotted {files[-1]}")
    return files


def _plot(result: Result, path: Path) -> Path:
    f = result.figures
    if result.scenario == "burn-down":
        return report.plot_batches(result, path)
    if result.scenario == "latency":
        title = f"latency at {f['target_jobs_per_s']:,.0f} jobs/s, {f['workers']} workers"
    else:
        title = f"wake-up of parked long polls, {f['workers']} workers"
    return report.plot_cdf(result.series, title, path)
