"""``python -m broker …``: serve, token, demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import config as config_module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m broker", description="Orchestrator broker")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the broker (HTTP API)")
    _server_flags(serve)

    migrate = commands.add_parser("migrate", help="create or upgrade a Postgres ledger's schema")
    migrate.add_argument("--store", help="postgresql://user@host:port/db (BROKER_STORE)")

    token = commands.add_parser("token", help="print a token signed with the local key")
    token.add_argument("--tenant", required=True)
    token.add_argument("--scopes", default="orch:read orch:operate orch:worker")
    token.add_argument("--subject", default="dev")
    token.add_argument("--project")
    token.add_argument("--ttl", type=_positive, default=24 * 3600, help="seconds (86400)")
    token.add_argument("--var-dir", help="where the key file is (./var)")

    demo = commands.add_parser("demo", help="start a broker with a producer and workers")
    _server_flags(demo)
    demo.add_argument("--jobs", type=_positive, default=100_000, help="jobs to run (100000)")
    demo.add_argument("--workers", type=_positive, default=4, help="SDK workers (4)")
    demo.add_argument("--batch", type=_positive, default=100, help="claim batch size (100)")
    demo.add_argument("--fail-rate", type=float, default=0.01, help="share of failing attempts")
    demo.add_argument(
        "--in-process",
        action="store_true",
        help="drive the engine directly, without HTTP or a ledger",
    )
    return parser


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (BROKER_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (BROKER_PORT, 8080)")
    parser.add_argument("--store", help="sqlite:///path, postgresql://… (BROKER_STORE)")
    parser.add_argument("--var-dir", help="keys and dev token (BROKER_VAR_DIR, ./var)")
    parser.add_argument("--max-backlog", type=_positive, help="flush backlog bound (200000)")


def _migrate(store: str) -> int:
    if not store.startswith(("postgresql://", "postgres://")):
        print(
            f"migrate: {store} is not a Postgres URL (SQLite ledgers need no migration)",
            file=sys.stderr,
        )
        return 2
    import asyncio

    import asyncpg

    from .store.postgres import migrate

    async def run() -> list[str]:
        conn = await asyncpg.connect(store)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(run())
    print(f"migrate: applied {', '.join(applied)}" if applied else "migrate: up to date")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = vars(args)
    if args.command == "serve":
        from .server import run

        run(config_module.load(flags))
    elif args.command == "migrate":
        return _migrate(config_module.load(flags).store)
    elif args.command == "token":
        from .api.auth import issue_token

        config = config_module.load(flags)
        try:
            token = issue_token(
                config.keys(create=True),
                args.tenant,
                args.scopes,
                subject=args.subject,
                project=args.project,
                ttl_s=args.ttl,
            )
        except ValueError as exc:
            print(f"token: {exc}", file=sys.stderr)
            return 2
        print(
            f"# tenant {args.tenant}, scopes {args.scopes!r}, key {config.key_file}",
            file=sys.stderr,
        )
        print(token)
    elif args.command == "demo":
        if not 0.0 <= args.fail_rate <= 1.0:
            raise SystemExit("--fail-rate must be between 0 and 1")
        if args.in_process:
            from .demo import run_demo

            run_demo(args.jobs, args.batch, args.fail_rate)
        else:
            from .http_demo import demo_config, run_http_demo

            config = demo_config(
                config_module.load(flags), args.port is not None, args.store is not None
            )
            return run_http_demo(config, args.jobs, args.workers, args.batch, args.fail_rate)
    return 0
