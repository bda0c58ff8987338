"""Run the broker as a server: load state, open the port, stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from .api.app import lean_site, make_app
from .api.auth import Authenticator, issue_token
from .api.fast_http import KEEPALIVE_S
from .config import Config
from .service import Broker
from .store import ledger_for

log = logging.getLogger("broker")

DEV_SCOPES = "orch:read orch:operate orch:worker orch:quota orch:backfill"


class Server:
    """A broker plus its HTTP site; ``start`` returns once the port is open."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.broker = Broker(ledger_for(config.store, config.sqlite_synchronous), config.service)
        keys = config.keys(create=True)
        self.keys = keys
        self.app = make_app(self.broker, Authenticator(keys), config.api)
        self._runner: web.AppRunner | None = None
        self.port = config.port

    async def start(self) -> None:
        await self.broker.start()  # state is loaded before the port opens
        settle_garbage_collector()
        # handler_cancellation: a long poll whose client went away stops waiting at once;
        # an idle connection is closed after the same time on both paths
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            keepalive_timeout=KEEPALIVE_S,
        )
        await self._runner.setup()
        # the worker routes and submission take the lean path; aiohttp serves the rest
        site = lean_site(self._runner, host=self.config.host, port=self.config.port)
        await site.start()
        self.port = site.port

    async def stop(self) -> None:
        # end the event streams first: an open one would hold the HTTP shutdown until
        # its timeout, and with it the final flush
        self.broker.events.close()
        self.broker.stop_waiting()  # likewise a parked long poll (up to 30 s)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.broker.stop()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def write_dev_token(self) -> str | None:
        """A development token (tenant ``dev``, every scope) next to the key file."""
        if self.keys.sign_key is None:
            return None
        token = issue_token(self.keys, "dev", DEV_SCOPES, subject="dev")
        path = self.config.dev_token_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n")
        path.chmod(0o600)
        return str(path)


def settle_garbage_collector() -> None:
    """Keep the cycle collector off what lives as long as the process.

    Everything allocated so far (modules, the state just loaded) stays for good;
    ``gc.freeze`` moves it out of the collector's reach, so a full collection no
    longer walks it again and again. Collections of young objects then run about
    seven times less often than by default (every 5,000 allocations, not 700); what
    the hot path allocates is freed by reference counting once a request is
    answered (what it bought, and how it was measured: docs/performance.md)."""
    gc.freeze()
    gc.set_threshold(5_000, 10, 10)


async def serve(config: Config, announce: Callable[[str], None] = print) -> None:
    server = Server(config)
    await server.start()
    announce(f"broker listening on {server.url} (store {server.broker.ledger.url})")
    token_path = server.write_dev_token()
    if token_path:
        announce(f"dev token (tenant dev, all scopes): {token_path}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    announce("broker stopping: writing what is pending")
    await server.stop()


def run(config: Config) -> None:
    import uvloop

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvloop.run(serve(config))
