"""Text no ledger can store, sent to a real broker on a real Postgres ledger.

Postgres refuses a NUL in a text column, no driver encodes an unpaired
surrogate (a header byte that is not UTF-8, once decoded), and orjson writes
only 254 levels of nesting. A request carrying any of them must be refused with
a 4xx and change nothing: accepted, it would make every later flush fail and
stall the broker's durable writes for good. After the whole barrage the broker
must still take, hand out and durably complete ordinary jobs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from loadtests.broker_process import BrokerProcess, session
from tests.e2e.test_crash import BASE, POSTGRES_ADMIN

NUL = "a\x00b"


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def job(**fields: Any) -> dict[str, Any]:
    return {"jobType": "hostile", "payload": {"ok": True}, **fields}


LEASE = {"jobId": "0190f1f2-0000-7000-8000-000000000001", "leaseId": "1"}
# (method, path, body, extra headers, the statuses that are right)
BARRAGE: list[tuple[str, str, Any, dict[str, str], set[int]]] = [
    *(
        ("POST", "/jobs", {"jobs": [job(), job(**{field: NUL})]}, {}, {400})
        for field in ("project", "correlationId", "idempotencyKey", "sourceHost", "runId", "key")
    ),
    ("POST", "/jobs", {"jobs": [job(payload=deep(300))]}, {}, {400}),
    ("POST", "/worker/claim", {"workerId": NUL, "jobTypes": ["hostile"]}, {}, {400}),
    ("POST", "/worker/heartbeat", {"workerId": NUL, "leases": [LEASE]}, {}, {400}),
    (
        "POST",
        "/worker/heartbeat",
        {"workerId": "w", "leases": [{**LEASE, "progress": {"deep": deep(300)}}]},
        {},
        {400},
    ),
    (
        "POST",
        "/worker/ack",
        {"workerId": NUL, "results": [{**LEASE, "status": "succeeded"}]},
        {},
        {400},
    ),  # fmt: skip
    (
        "POST",
        "/worker/ack",
        {"workerId": "w", "results": [{**LEASE, "status": "succeeded", "output": deep(300)}]},
        {},
        {400},
    ),
    ("POST", "/runs", {"jobs": [job(key="a")], "runToken": NUL}, {}, {400}),
    ("GET", "/runs/a%00b", None, {}, {404}),
    ("GET", "/runs/a%00b/dag", None, {}, {404}),
    ("POST", "/runs/a%00b/cancel", None, {}, {404}),
    (
        "POST",
        "/runs/a%00b/replay",
        {"jobIds": [LEASE["jobId"]]},  # a well-formed id: the run id itself is looked up
        {"X-Stella-Operator-Reason": "test"},
        {404},
    ),
    ("GET", "/runs?page_size=%C2%B2", None, {}, {400}),
    ("GET", f"/runs?page_token={cursor([1, NUL])}", None, {}, {400}),
    ("GET", f"/runs?page_token={cursor([2**63, 'r'])}", None, {}, {400}),
    ("PUT", "/sources/a%00b", {"rate": 1, "burst": 1}, {"X-Stella-Operator-Reason": "t"}, {400}),
]


@pytest.fixture
async def broker() -> AsyncIterator[BrokerProcess]:
    name = f"hostile_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    process = BrokerProcess(POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        process.remove()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def call(
    http: aiohttp.ClientSession,
    broker: BrokerProcess,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = {"Authorization": f"Bearer {broker.mint('acme', ALL_SCOPES)}", **(headers or {})}
    data = None if body is None else json.dumps(body).encode()  # orjson stops at 254 levels
    url = f"{broker.url}{BASE}{path}"
    async with http.request(method, url, data=data, headers=sent, timeout=10) as response:
        return response.status, orjson.loads(await response.read())


ALL_SCOPES = "orch:read orch:operate orch:worker orch:quota orch:backfill"


async def raw_put_source(broker: BrokerProcess, headers: dict[bytes, bytes]) -> int:
    """``PUT /sources/h`` written byte for byte; returns the status."""
    body = b'{"rate": 1}'
    token = broker.mint("acme", ALL_SCOPES).encode()
    fields = {b"Authorization": b"Bearer " + token, **headers}
    request = (
        b"PUT " + BASE.encode() + b"/sources/h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        + b"".join(name + b": " + value + b"\r\n" for name, value in fields.items())
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    writer.write(request)
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(reply.split(b" ", 2)[1])


async def test_text_postgres_cannot_store_is_refused_and_the_ledger_keeps_writing(
    broker: BrokerProcess,
) -> None:
    async with session() as http:
        for method, path, body, headers, expected in BARRAGE:
            status, reply = await call(http, broker, method, path, body, headers)
            assert status in expected, (method, path, status, reply)
            assert reply["error"]["code"] in ("VALIDATION_FAILED", "NOT_FOUND"), reply
        # an operator's reason or ticket that is not UTF-8: aiohttp's client will not
        # send such bytes, so they go out on a socket of their own
        for header in (b"X-Stella-Operator-Reason", b"X-Stella-Operator-Ticket"):
            status = await raw_put_source(
                broker, {b"X-Stella-Operator-Reason": b"ok", header: b"\xff"}
            )
            assert status == 400, header
        # a bearer token that is not ASCII: 401, not a 500
        bad = {"Authorization": "Bearer \u00ff.a.b"}
        async with http.post(f"{broker.url}{BASE}/jobs", data=b"{}", headers=bad) as response:
            assert response.status == 401, await response.text()

        # durable writes still land: submit, claim and ack answer at once
        status, reply = await call(http, broker, "POST", "/jobs", {"jobs": [job(), job()]})
        assert status == 201, reply
        claim = {"workerId": "w", "jobTypes": ["hostile"], "maxJobs": 10}
        status, claimed = await call(http, broker, "POST", "/worker/claim", claim)
        assert status == 200 and len(claimed["jobs"]) == 2, claimed
        results = [
            {"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"}
            for j in claimed["jobs"]
        ]
        status, acked = await call(
            http, broker, "POST", "/worker/ack", {"workerId": "w", "results": results}
        )
        assert status == 200, acked
        assert [r["state"] for r in acked["results"]] == ["succeeded", "succeeded"]
        async with http.get(f"{broker.url}/readyz") as response:
            assert response.status == 200
    assert broker.proc is not None and broker.proc.poll() is None
