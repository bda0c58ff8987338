"""Shared fixtures for the HTTP API tests: an in-process app over a manual clock.

``api`` is a started broker on a ``MemoryLedger`` behind ``make_app``, reached
through the aiohttp test client; ``make_api`` builds more (other settings,
other keys). Every broker started here is stopped in teardown.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from broker.api.app import ApiSettings, lean_site, make_app
from broker.api.auth import Authenticator, KeySet, issue_token
from broker.service import Broker, ManualClock, ServiceSettings
from broker.store import MemoryLedger

BASE = "/api/v1/orchestrator"
SUBMIT = f"{BASE}/jobs"
CLAIM = f"{BASE}/worker/claim"
HEARTBEAT = f"{BASE}/worker/heartbeat"
ACK = f"{BASE}/worker/ack"

NOW_MS = 1_800_000_000_000  # 2027-01-15T08:00:00Z
TENANT = "tenant-a"
OTHER = "tenant-b"
ALL = "orch:read orch:operate orch:worker"
SECRET = b"k" * 32

RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def rfc3339(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(text: str) -> int:
    """Milliseconds of an RFC 3339 ``Z`` timestamp (asserting its form)."""
    assert RFC3339_Z.match(text), text
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def is_uuid7(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        value = uuid.UUID(text)
    except ValueError:
        return False
    return str(value) == text and value.variant == uuid.RFC_4122 and value.version == 7


def compact_digest(payload: Any) -> str:
    encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def job(job_type: str = "scan", payload: Any = None, **fields: Any) -> dict[str, Any]:
    return {"jobType": job_type, "payload": {"n": 1} if payload is None else payload, **fields}


def nested(depth: int) -> Any:
    """A list ``depth`` levels deep: orjson reads 1,024 levels but writes 254."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def assert_envelope(status: int, body: Any, code: str, expected_status: int) -> dict[str, Any]:
    """``body`` is the error envelope with ``code``; returns its ``error`` object."""
    assert status == expected_status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["traceId"], str) and error["traceId"]
    return error


def detail_fields(error: dict[str, Any]) -> list[str]:
    details = error.get("details")
    assert isinstance(details, list) and details, error
    for item in details:
        assert isinstance(item["field"], str) and isinstance(item["problem"], str), item
    return [item["field"] for item in details]


@dataclass
class Api:
    client: TestClient
    app: web.Application
    broker: Broker
    clock: ManualClock
    ledger: MemoryLedger
    keys: KeySet

    # -- tokens and raw requests ----------------------------------------------------
    def token(self, tenant: str | None = TENANT, scopes: str = ALL, **kw: Any) -> str:
        if tenant is None:
            return self.keys.sign({"sub": "dev", "scope": scopes, "exp": 4_000_000_000})
        return issue_token(self.keys, tenant, scopes, **kw)

    def headers(
        self, tenant: str | None = TENANT, scopes: str = ALL, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant, scopes)}", **(extra or {})}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        tenant: str | None = TENANT,
        scopes: str = ALL,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        sent = dict(self.headers(tenant, scopes) if auth else {})
        sent.update(headers or {})
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(method, path, data=data, headers=sent) as resp:
            text = await resp.read()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return resp.status, parsed

    async def raw(
        self,
        method: str,
        path: str,
        headers: dict[bytes, bytes],
        body: bytes = b"",
        scopes: str = ALL,
    ) -> tuple[int, Any]:
        """A request written byte for byte on a socket of its own: header values aiohttp's
        client would refuse to send (bytes that are not UTF-8). Sends the usual token
        unless ``headers`` has an Authorization of its own."""
        fields = {b"Authorization": f"Bearer {self.token(scopes=scopes)}".encode(), **headers}
        head = b"%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" % (
            method.encode(),
            path.encode(),
        )
        head += b"".join(b"%s: %s\r\n" % item for item in fields.items())
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        reader, writer = await asyncio.open_connection(self.client.host, self.client.port)
        writer.write(head + body)
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        status_line, _, rest = reply.partition(b"\r\n")
        payload = rest.partition(b"\r\n\r\n")[2]
        return int(status_line.split()[1]), json.loads(payload) if payload else None

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, body, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)

    # -- the usual happy-path calls ------------------------------------------------
    async def submit(self, *jobs: dict[str, Any], tenant: str = TENANT) -> list[dict[str, Any]]:
        status, body = await self.post(SUBMIT, {"jobs": list(jobs or [job()])}, tenant=tenant)
        assert status == 201, body
        return body["jobs"]

    async def claim(
        self,
        job_types: list[str] | None = None,
        max_jobs: int = 10,
        tenant: str = TENANT,
        **extra: Any,
    ) -> list[dict[str, Any]]:
        request = {
            "workerId": "w-1",
            "jobTypes": job_types or ["scan"],
            "maxJobs": max_jobs,
            **extra,
        }
        status, body = await self.post(CLAIM, request, tenant=tenant)
        assert status == 200, body
        return body["jobs"]

    async def ack(
        self, *results: dict[str, Any], tenant: str = TENANT, worker: str = "w-1"
    ) -> list[dict[str, Any]]:
        status, body = await self.post(
            ACK, {"workerId": worker, "results": list(results)}, tenant=tenant
        )
        assert status == 200, body
        return body["results"]

    async def read(self, job_id: str, tenant: str = TENANT) -> dict[str, Any]:
        status, body = await self.get(f"{SUBMIT}/{job_id}", tenant=tenant)
        assert status == 200, body
        return body

    async def advance(self, ms: int) -> None:
        """Move the clock and run the reaper / timer pump once."""
        self.clock.advance(ms)
        self.broker.ticker.tick()

    async def snapshot(self) -> tuple[Any, ...]:
        """Everything a refused request must leave alone (after pending writes landed)."""
        await self.broker.flusher.commit([])
        engine = self.broker.engine
        ledger = self.ledger
        leases, timers = engine.leases, engine.timers
        return (
            sorted(
                (
                    j.jid,
                    j.state,
                    j.attempt,
                    getattr(j, "last_token", None),
                    getattr(j, "last_status", None),
                    (leases.token_of(j.jid), leases.deadline_of(j.jid))
                    if j.jid in leases
                    else None,
                    timers.due_of(j.jid) if j.jid in timers else None,
                )
                for j in engine.jobs.values()
            ),
            engine.next_jid,
            list(engine.state_counts),
            len(engine.ready),
            sorted(ledger._jobs.items()),
            list(ledger._history),
        )


MakeApi = Callable[..., Awaitable[Api]]


class LeanTestServer(TestServer):
    """The app behind the lean path for submission and the worker routes, as
    ``broker serve`` runs it (``TestServer`` alone is aiohttp's path only)."""

    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        if self.runner:
            return
        self._loop = loop
        self.runner = await self._make_runner(handler_cancellation=True, **kwargs)
        await self.runner.setup()
        sock = self.socket_factory(self.host, self.port or 0, socket.AF_INET)
        site = lean_site(self.runner, sock=sock)
        await site.start()
        self.port = site.port
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")


@pytest.fixture(params=["aiohttp", "lean"], ids=lambda path: f"{path}-http")
def http_path(request: pytest.FixtureRequest) -> str:
    """Every API test runs over aiohttp's full path and over the lean path."""
    return str(request.param)


@pytest.fixture
async def make_api(aiohttp_client: Any, http_path: str) -> AsyncIterator[MakeApi]:
    brokers: list[Broker] = []

    async def build(
        settings: ApiSettings | None = None,
        keys: KeySet | None = None,
        start: bool = True,
        now_ms: int = NOW_MS,
        service: ServiceSettings | None = None,
    ) -> Api:
        clock = ManualClock(now_ms)
        ledger = MemoryLedger()
        broker = Broker(ledger, service or ServiceSettings(), clock)
        if start:
            await broker.start()
        brokers.append(broker)
        keys = keys or KeySet.hs256(SECRET)
        app = make_app(broker, Authenticator(keys), settings or ApiSettings())
        client = await aiohttp_client(LeanTestServer(app) if http_path == "lean" else app)
        return Api(client, app, broker, clock, ledger, keys)

    yield build
    for broker in brokers:
        await broker.stop()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()
