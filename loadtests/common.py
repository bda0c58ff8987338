"""Shared pieces of the scenarios: HTTP client, progress line, CPU meter, statistics.

Every scenario returns a :class:`Result`; ``report.py`` writes it out.
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from .broker_process import BrokerProcess, postgres_cpu_seconds

BASE = "/api/v1/orchestrator"
#: a tenant's worker token can also submit: one token per tenant serves both sides
SCOPES = "orch:operate orch:worker"
Json = dict[str, Any]


def job_type(scenario: str) -> str:
    """A job type of its own for each run: jobs left in a shared (Postgres) ledger by
    an earlier run are never claimed by this one."""
    return f"load.{scenario}.{secrets.token_hex(4)}"


def own_cpu() -> float:
    """User + system CPU seconds of this process (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def quantiles_ms(seconds: Sequence[float], prefix: str, points: Sequence[str]) -> dict[str, float]:
    """``{prefix}_p50_ms: …`` for each of ``points`` ("p50", "p99", "p999", "max")."""
    ordered = sorted(seconds)
    levels = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999, "max": 1.0}
    return {f"{prefix}_{p}_ms": round(percentile(ordered, levels[p]) * 1000, 3) for p in points}


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope dy/dx of ``(x, y)`` points (0.0 for fewer than two)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / var


@dataclass
class Result:
    """What a scenario measured.

    ``figures`` (flat scalars) go to the JSON file and the Markdown table; ``rows``
    (one dict per run or per tenant) go to both as a second table, of which the
    Markdown shows the first ``md_rows`` (all when 0); ``series`` are raw samples
    for the plots and are not written."""

    scenario: str
    figures: Json
    rows: list[Json] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    md_rows: int = 0


class HttpError(RuntimeError):
    pass


class Client:
    """One tenant's view of the broker over a shared keep-alive session (orjson bodies)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http = http
        self.base = url + BASE
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.refused = 0  # 429 / 503 answers, retried after Retry-After

    async def post(self, path: str, body: Any) -> Any:
        return await self.post_raw(path, orjson.dumps(body))

    async def post_raw(self, path: str, data: bytes) -> Any:
        """POST, retrying 429/503 after ``Retry-After`` (capped at 1 s); other errors raise."""
        while True:
            async with self.http.post(self.base + path, data=data, headers=self.headers) as reply:
                raw = await reply.read()
                if reply.status < 300:
                    return orjson.loads(raw)
                if reply.status not in (429, 503):
                    raise HttpError(f"{path}: {reply.status} {raw[:300]!r}")
                self.refused += 1
                wait_s = float(reply.headers.get("Retry-After", "1"))
            await asyncio.sleep(min(max(wait_s, 0.01), 1.0))

    async def claim(
        self, worker: str, job_type: str, max_jobs: int, wait_ms: int = 0, lease_s: int = 60
    ) -> list[Json]:
        body = {
            "workerId": worker,
            "jobTypes": [job_type],
            "maxJobs": max_jobs,
            "leaseSeconds": lease_s,
            "waitMs": wait_ms,
        }
        jobs: list[Json] = (await self.post("/worker/claim", body))["jobs"]
        return jobs

    async def ack(self, worker: str, jobs: Sequence[Json], claim: Json | None = None) -> list[Json]:
        """Ack ``jobs`` as succeeded; with ``claim`` (the nested claim), return the next jobs."""
        body: Json = {
            "workerId": worker,
            "results": [
                {"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"} for j in jobs
            ],
        }
        if claim is not None:
            body["claim"] = claim
        reply = await self.post("/worker/ack", body)
        bad = [r for r in reply["results"] if r["outcome"] != "accepted"]
        if bad:
            raise HttpError(f"ack refused: {bad[:3]}")
        next_jobs: list[Json] = reply.get("jobs", [])
        return next_jobs

    async def queue_depth(self) -> int:
        """``orchestrator_queue_depth`` from ``/metrics`` (jobs ready to be claimed)."""
        async with self.http.get(self.base[: -len(BASE)] + "/metrics") as reply:
            text = await reply.text()
        for line in text.splitlines():
            if line.startswith("orchestrator_queue_depth "):
                return int(float(line.split()[1]))
        raise HttpError("no orchestrator_queue_depth in /metrics")


def client(http: aiohttp.ClientSession, broker: BrokerProcess, tenant: str | None = None) -> Client:
    """A client with the dev token (tenant ``dev``) or a token minted for ``tenant``."""
    token = broker.token() if tenant is None else broker.mint(tenant, SCOPES)
    return Client(http, broker.url, token)


class Meter:
    """Wall time and the CPU seconds of the broker and of this generator over a phase.

    A ``*_cpu_per_wall`` near 1.0 means that process had a core to itself and was
    saturated: with the generator there, the figure measures the generator."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.broker = broker
        self.postgres = broker.store.startswith(("postgresql://", "postgres://"))
        self.wall0 = time.perf_counter()
        self.broker0 = broker.cpu()
        self.own0 = own_cpu()
        self.pg0 = postgres_cpu_seconds() if self.postgres else 0.0

    def figures(self, prefix: str = "") -> dict[str, float]:
        wall = time.perf_counter() - self.wall0
        broker = self.broker.cpu() - self.broker0
        own = own_cpu() - self.own0
        figures = {
            f"{prefix}wall_s": round(wall, 3),
            f"{prefix}broker_cpu_s": round(broker, 2),
            f"{prefix}generator_cpu_s": round(own, 2),
            f"{prefix}broker_cpu_per_wall": round(broker / wall, 2) if wall else 0.0,
            f"{prefix}generator_cpu_per_wall": round(own / wall, 2) if wall else 0.0,
        }
        if self.postgres:
            pg = postgres_cpu_seconds() - self.pg0
            figures[f"{prefix}postgres_cpu_s"] = round(pg, 2)
            figures[f"{prefix}postgres_cpu_per_wall"] = round(pg / wall, 2) if wall else 0.0
        return figures


class Progress:
    """A status line on stderr, redrawn at least every second by a background task.

    On a terminal the line is overwritten with ``\\r``; elsewhere each redraw is a line."""

    def __init__(self, label: str, status: Callable[[], str], interval_s: float = 0.5) -> None:
        self.label = label
        self.status = status
        self.tty = sys.stderr.isatty()
        self.interval_s = interval_s if self.tty else 1.0
        self.started = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    def draw(self, end: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        line = f"{self.label} {elapsed:6.1f}s  {self.status()}"
        if self.tty:
            sys.stderr.write(f"\r{line:<100}{end}")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.draw()

    async def __aenter__(self) -> Progress:
        self.started = time.perf_counter()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
        self.draw("\n")


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def kernels() -> str:
    """Which kernels the broker subprocess runs on (it inherits this environment)."""
    return "twins" if os.environ.get("BROKER_NO_EXTENSIONS", "") not in ("", "0") else "native"
