"""``python -m loadtests <scenario> [options]``: load runs against a broker subprocess.

Each run prints progress lines, then writes a JSON result and a Markdown table
under ``loadtests/results/`` (and prints the table). The broker's and the
generator's CPU seconds are recorded so a saturated generator shows.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from . import scenarios
from .broker_process import BrokerProcess

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests")
    sub = parser.add_subparsers(dest="scenario", required=True)
    burn = sub.add_parser("burn-down", help="pre-submit N jobs, W workers drain them k at a time")
    burn.add_argument("--jobs", type=int, default=100_000)
    burn.add_argument("--workers", type=int, default=4)
    burn.add_argument("--batch", type=int, default=100)
    single = sub.add_parser("single", help="one job per request, ack-and-claim round trips")
    single.add_argument("--jobs", type=int, default=20_000)
    single.add_argument("--workers", type=int, default=64)
    for p in (burn, single):
        p.add_argument("--store", help="store URL (default: SQLite in a temp dir)")
        p.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    broker = BrokerProcess(args.store)
    broker.start()
    print(f"broker on {broker.url}, store {broker.store}")
    try:
        import uvloop

        if args.scenario == "burn-down":
            result = uvloop.run(scenarios.burn_down(broker, args.jobs, args.workers, args.batch))
        else:
            result = uvloop.run(scenarios.single(broker, args.jobs, args.workers))
    finally:
        broker.stop()
    result["machine"] = (
        f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"
    )
    write(result, args.out)


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    name = f"{result['scenario']}-{stamp}"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = "| figure | value |\n| --- | --- |\n" + "".join(
        f"| {key} | {value} |\n" for key, value in result.items()
    )
    (out / f"{name}.md").write_text(table)
    print(table)
    print(f"written {out / name}.json and .md")


if __name__ == "__main__":
    main()
