"""``python -m broker …``: the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m broker", description="Orchestrator broker")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run jobs through the engine and report throughput")
    demo.add_argument("--jobs", type=_positive, default=200_000, help="jobs to run (200000)")
    demo.add_argument("--batch", type=_positive, default=100, help="claim batch size (100)")
    demo.add_argument("--fail-rate", type=float, default=0.02, help="share of failing attempts")
    demo.add_argument("--seed", type=int, default=1)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        if not 0.0 <= args.fail_rate <= 1.0:
            raise SystemExit("--fail-rate must be between 0 and 1")
        run_demo(args.jobs, args.batch, args.fail_rate, args.seed)
    return 0
