"""The aiohttp application: routes, error envelope, auth, limits, idempotency.

Handlers are thin: authenticate, parse the body strictly (``requests.py``),
call the Broker, render (``render.py``). Every error leaves as the envelope
``{"error": {"code", "message", "traceId"[, "details"]}}`` with its status
from ``broker.errors.HTTP_STATUS``; no refused request changes state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import (
    HTTP_STATUS,
    Backpressure,
    NotFound,
    OrchestratorError,
    PayloadTooLarge,
    RateLimited,
)
from ..service import Broker
from . import openapi, render
from .auth import Authenticator, Principal
from .events import EventRoutes
from .fast_http import LeanPath
from .idempotency import Answer, IdempotencyCache
from .ids import job_in_path
from .limits import LimitRoutes
from .metrics import Metrics
from .render import json_response
from .requests import parse_ack, parse_claim, parse_heartbeat, parse_json, parse_submit
from .runs import RunRoutes
from .timefmt import rfc3339

log = logging.getLogger("broker.api")

BASE = "/api/v1/orchestrator"
STATS_EVERY_S = 5.0  # how often /metrics asks the store for its own figures
API_KEY: web.AppKey[Api] = web.AppKey("api")
TRACE_KEY = web.RequestKey("trace_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    max_body_bytes: int = 64 * 1024 * 1024
    max_payload_bytes: int = 1024 * 1024
    default_extend_s: int = 30


def error_response(
    code: str,
    message: str,
    trace_id: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "traceId": trace_id}
    if details:
        error["details"] = details
    return json_response({"error": error}, HTTP_STATUS.get(code, 500), headers)


def trace_id_of(request: web.Request) -> str:
    """The trace id of a W3C ``traceparent`` header, or a fresh one (made only when needed)."""
    trace = request.get(TRACE_KEY)
    if trace is None:
        trace = request[TRACE_KEY] = _trace_from_header(request.headers.get("traceparent", ""))
    return trace


def _trace_from_header(parent: str) -> str:
    parts = parent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
            return parts[1].lower()
        except ValueError:
            pass
    # a trace id needs to be unique, not secret: no system call per request
    return f"{random.getrandbits(128):032x}"


_AIOHTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OrchestratorError as exc:
        trace = trace_id_of(request)
        headers = None
        if isinstance(exc, Backpressure):
            headers = {"Retry-After": str(exc.retry_after_s)}
        elif isinstance(exc, RateLimited):
            headers = exc.headers()
        return error_response(exc.code, exc.message, trace, exc.details, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        trace = trace_id_of(request)
        code = _AIOHTTP_CODES.get(
            exc.status, "VALIDATION_FAILED" if exc.status < 500 else "INTERNAL"
        )
        return error_response(code, exc.reason, trace, headers=_allow_header(exc))
    except Exception:
        trace = trace_id_of(request)
        log.exception("unhandled error (trace %s)", trace)
        return error_response("INTERNAL", "internal error", trace)


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


class Api:
    def __init__(
        self, broker: Broker, auth: Authenticator, settings: ApiSettings | None = None
    ) -> None:
        self.broker = broker
        self.auth = auth
        self.settings = settings or ApiSettings()
        self.metrics = Metrics()
        self.idempotency = IdempotencyCache()
        self.refused = {"backpressure": 0, "rate_limited": 0}
        self._stats: dict[str, int] = {}
        self._stats_at = -STATS_EVERY_S

    # -- plumbing -------------------------------------------------------------------
    def principal(self, request: web.Request) -> Principal:
        return self.auth.principal(
            request.headers.get("Authorization"), request.headers.get("X-Stella-Tenant")
        )

    async def body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"request body over {self.settings.max_body_bytes} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(
                f"request body over {self.settings.max_body_bytes} bytes"
            ) from None

    async def idempotent(
        self,
        request: web.Request,
        tenant: str,
        body: bytes,
        run: Callable[[], Awaitable[web.Response]],
    ) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return await run()
        IdempotencyCache.check_key(key)
        slot = (tenant, request.path, key)
        now = self.broker.clock.now_ms()
        answer = await self.idempotency.lookup(slot, body, now)
        if answer is not None:
            return web.Response(
                body=answer.body,
                status=answer.status,
                content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        response: web.Response | None = None
        try:
            response = await run()
        except OrchestratorError as exc:
            status = HTTP_STATUS.get(exc.code, 500)
            if status < 500 and status != 429:
                error: dict[str, Any] = {
                    "code": exc.code,
                    "message": exc.message,
                    "traceId": trace_id_of(request),
                }
                if exc.details:
                    error["details"] = exc.details
                response = json_response({"error": error}, status)
                return response
            raise
        finally:
            kept = None
            if response is not None and isinstance(response.body, bytes):
                kept = Answer(response.status, response.body)
            self.idempotency.finish(slot, kept, now)
        return response

    def _count_refusal(self, exc: OrchestratorError) -> None:
        if isinstance(exc, Backpressure):
            self.refused["backpressure"] += 1
        elif isinstance(exc, RateLimited):
            self.refused["rate_limited"] += 1

    # -- jobs -----------------------------------------------------------------------
    async def submit(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        tenant = self.principal(request).require("orch:operate")
        body = await self.body(request)

        async def run() -> web.Response:
            specs = parse_submit(
                parse_json(body), self.broker.clock.now_ms(), self.settings.max_payload_bytes
            )
            try:
                replies = await self.broker.submit(tenant, specs)
            except (Backpressure, RateLimited) as exc:
                self._count_refusal(exc)
                raise
            return render.raw_json(render.submitted(replies), 201)

        response = await self.idempotent(request, tenant, body, run)
        self.metrics.latency["submit"].observe(time.perf_counter() - started)
        return response

    async def get_job(self, request: web.Request) -> web.Response:
        tenant = self.principal(request).require("orch:read", "orch:operate")
        _, created, jid = job_in_path(request)
        history = await self.broker.read_job(jid)
        if history is None or history.job.tenant != tenant or history.job.created != created:
            raise NotFound("no such job")
        return json_response(render.job_view(history))

    # -- worker bridge ---------------------------------------------------------------
    async def claim(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        tenant = self.principal(request).require("orch:worker")
        claim = parse_claim(parse_json(await self.body(request)))
        grant = await self.broker.claim(
            tenant,
            claim.worker,
            claim.job_types,
            claim.max_jobs,
            claim.lease_ms,
            claim.wait_ms,
            gone=_client_gone(request),
        )
        response = json_response({"jobs": render.claimed_jobs(self.broker.engine, grant)})
        self.metrics.latency["claim"].observe(time.perf_counter() - started)
        return response

    async def heartbeat(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        tenant = self.principal(request).require("orch:worker")
        beat = parse_heartbeat(parse_json(await self.body(request)), self.settings.default_extend_s)
        replies = self.broker.heartbeat(
            tenant, beat.jids, beat.tokens, beat.extend_ms, beat.progress
        )
        leases = []
        for job_id, reply in zip(beat.job_ids, replies, strict=True):
            if reply.deadline < 0:
                leases.append({"jobId": job_id, "status": "lost"})
            else:
                leases.append(
                    {"jobId": job_id, "status": "extended", "leaseUntil": rfc3339(reply.deadline)}
                )
        response = json_response({"leases": leases})
        self.metrics.latency["heartbeat"].observe(time.perf_counter() - started)
        return response

    async def ack(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        tenant = self.principal(request).require("orch:worker")
        body = await self.body(request)

        async def run() -> web.Response:
            ack = parse_ack(parse_json(body))
            try:
                if ack.successes is not None:
                    replies = await self.broker.complete(tenant, *ack.successes)
                else:
                    replies = await self.broker.ack(tenant, ack.items) if ack.items else []
            except Backpressure as exc:
                self._count_refusal(exc)
                raise
            out: dict[str, Any] = {"results": render.ack_results(ack.job_ids, replies)}
            if ack.claim is not None:
                c = ack.claim
                grant = await self.broker.claim(
                    tenant,
                    ack.worker,
                    c.job_types,
                    c.max_jobs,
                    c.lease_ms,
                    c.wait_ms,
                    gone=_client_gone(request),
                )
                out["jobs"] = render.claimed_jobs(self.broker.engine, grant)
            return json_response(out)

        response = await self.idempotent(request, tenant, body, run)
        self.metrics.latency["ack"].observe(time.perf_counter() - started)
        return response

    # -- operations -------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        broker = self.broker
        if await broker.ready():
            return json_response({"status": "ready", "store": broker.ledger.url})
        reason = (
            "starting"
            if not broker.started
            else (
                f"ledger unavailable: {broker.flusher.last_error}"
                if not broker.flusher.healthy
                else "ledger does not answer"
            )
        )
        return error_response(
            "NOT_READY", reason, trace_id_of(request), headers={"Retry-After": "1"}
        )

    def metrics_snapshot(self) -> dict[str, Any]:
        broker = self.broker
        engine = broker.engine
        flusher = broker.flusher
        return {
            "queue_depth": len(engine.ready),
            "state_counts": list(engine.state_counts),
            "submitted": broker.counters["submitted"],
            "claimed": broker.counters["claimed"],
            "acked": broker.counters["acked"],
            "lease_expiries": broker.ticker.expired,
            "rate_limited": self.refused["rate_limited"],
            "backpressure": self.refused["backpressure"],
            "ledger_flushes": flusher.flushes,
            "ledger_failures": flusher.failures,
            "ledger_escaped": flusher.escaped,
            "ledger_lag_seconds": flusher.lag_seconds(),
            "ledger_backlog": flusher.backlog,
            "ledger_up": int(flusher.healthy),
            "ledger_unfolded": flusher.unfolded,
            "ledger_purged": flusher.purged,
            "limited": engine.limits.refused,
            "events_published": broker.events.published,
            "event_subscribers": len(broker.events),
            "ledger_stats": {},
        }

    async def metrics_route(self, request: web.Request) -> web.Response:
        snapshot = self.metrics_snapshot()
        snapshot["ledger_stats"] = await self._ledger_stats()
        return web.Response(
            body=self.metrics.render(snapshot),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _ledger_stats(self) -> dict[str, int]:
        """The store's own figures (dead tuples …), at most every few seconds and never
        holding up a scrape: an unreachable store gives the last figures."""
        now = time.monotonic()
        if now - self._stats_at >= STATS_EVERY_S:
            self._stats_at = now
            try:
                self._stats = await asyncio.wait_for(self.broker.ledger.stats(), 2.0)
            except Exception:  # noqa: BLE001 - metrics must answer while the store is down
                log.debug("ledger statistics unavailable", exc_info=True)
        return self._stats

    async def openapi_wrapped(self, request: web.Request) -> web.Response:
        return json_response(
            {"spec": openapi.document(), "version": "v1", "generatedAt": openapi.GENERATED_AT},
            headers={"Cache-Control": "max-age=300"},
        )

    async def openapi_raw(self, request: web.Request) -> web.Response:
        return json_response(openapi.document(), headers={"Cache-Control": "max-age=300"})


def _client_gone(request: web.Request) -> Callable[[], bool]:
    """True once the client has disconnected (a long poll then stops claiming for it)."""

    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    return gone


def lean_routes(app: web.Application) -> dict[str, Handler]:
    """The ``POST`` routes outside clients hammer: submission and the worker bridge.
    aiohttp serves them, and so does the lean path (``fast_http``) in front of it."""
    api = app[API_KEY]
    return {
        f"{BASE}/jobs": api.submit,
        f"{BASE}/worker/claim": api.claim,
        f"{BASE}/worker/heartbeat": api.heartbeat,
        f"{BASE}/worker/ack": api.ack,
    }


def lean_site(runner: web.AppRunner, **address: Any) -> LeanPath:
    """A site serving ``runner``'s app with the lean path in front (``host`` and
    ``port``, or ``sock``)."""
    app = runner.app
    return LeanPath(
        runner,
        lean_routes(app),
        envelope_middleware,
        app[API_KEY].settings.max_body_bytes,
        **address,
    )


def make_app(
    broker: Broker, auth: Authenticator, settings: ApiSettings | None = None
) -> web.Application:
    api = Api(broker, auth, settings)
    app = web.Application(
        middlewares=[envelope_middleware], client_max_size=api.settings.max_body_bytes
    )
    app[API_KEY] = api
    for path, handler in lean_routes(app).items():
        app.router.add_post(path, handler)
    app.router.add_get(f"{BASE}/jobs/{{jobId}}", api.get_job, allow_head=False)
    RunRoutes(api).register(app, BASE)
    EventRoutes(api).register(app, BASE)
    LimitRoutes(api).register(app, BASE)
    app.router.add_get("/healthz", api.healthz, allow_head=False)
    app.router.add_get("/readyz", api.readyz, allow_head=False)
    app.router.add_get("/metrics", api.metrics_route, allow_head=False)
    app.router.add_get("/.well-known/openapi", api.openapi_wrapped, allow_head=False)
    app.router.add_get("/openapi/orchestrator.json", api.openapi_raw, allow_head=False)
    return app
