"""Memory per queued job (without payload), measured as RSS growth.

    python -m bench.memory_per_job [--jobs 1000000] [--impl native|twin|both]

Each implementation runs in a fresh subprocess: RSS is read before and after
submitting N jobs whose payloads share one empty bytes object, so the figure
is the broker's own bookkeeping per job (engine record, interning, ready
queue entry), which is what the 200-byte target is about.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def measure(impl: str, jobs: int) -> float:
    from bench.engine_setup import filled_engine

    gc.collect()
    before = rss_bytes()
    engine = filled_engine(impl, jobs)
    gc.collect()
    after = rss_bytes()
    assert len(engine.ready) == jobs
    return (after - before) / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--impl", choices=["native", "twin", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{measure(args.impl, args.jobs):.1f}")
        return
    for impl in ["native", "twin"] if args.impl == "both" else [args.impl]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.memory_per_job",
                "--child",
                "--impl",
                impl,
                "--jobs",
                str(args.jobs),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        print(f"{impl}: {out.stdout.strip()} bytes per queued job ({args.jobs:,} jobs)")


if __name__ == "__main__":
    main()
