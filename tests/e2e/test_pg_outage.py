"""A Postgres outage under load: the cluster is stopped and started while the broker works.

Promised: while the database is down the broker keeps serving claims from memory,
reports not-ready, holds what it accepted and answers durable requests with 503
BACKPRESSURE once its bounded buffer is full; when the database is back it
reconnects and writes everything, and nothing it answered 2xx to is lost
(checked straight from the store, as the crash test does).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from loadtests.broker_process import BrokerProcess, session
from tests.e2e.test_crash import BASE, POSTGRES_ADMIN, check_ledger, read_postgres

CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def cluster(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    fast = ["-m", "fast"] if action == "stop" else []
    subprocess.run([*CLUSTER, version, "main", action, *fast], check=True, capture_output=True,
                   timeout=60)  # fmt: skip


async def wait_for_postgres(timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s * 10)):
        try:
            conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=1)
            await conn.close()
            return
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.1)
    raise AssertionError("Postgres did not come back")


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"outage_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        cluster("start") if not await _up() else None
        await wait_for_postgres()
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def _up() -> bool:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=1)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def load(
    broker: BrokerProcess,
    submitted: set[str],
    completed: set[str],
    seen: Counter[int],
    stop: asyncio.Event,
) -> None:
    """Submit and drain until ``stop``; a 503 is waited out (its Retry-After, shortened)."""
    headers = {"Authorization": f"Bearer {broker.token()}"}
    async with session() as http:

        async def call(path: str, body: object) -> dict | None:
            async with http.post(
                f"{broker.url}{BASE}{path}", data=orjson.dumps(body), headers=headers
            ) as response:
                seen[response.status] += 1
                if response.status == 503:
                    await asyncio.sleep(0.05)
                    return None
                assert response.status in (200, 201), await response.text()
                return orjson.loads(await response.read())

        async def producer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                jobs = [{"jobType": "outage", "payload": {"n": n, "i": i}} for i in range(25)]
                reply = await call("/jobs", {"jobs": jobs})
                if reply is not None:
                    submitted.update(job["jobId"] for job in reply["jobs"])

        async def worker(index: int) -> None:
            while not stop.is_set():
                claim = {"workerId": f"w{index}", "jobTypes": ["outage"], "maxJobs": 20,
                         "leaseSeconds": 30, "waitMs": 100}  # fmt: skip
                reply = await call("/worker/claim", claim)
                if not reply or not reply["jobs"]:
                    continue
                results = [
                    {"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"}
                    for j in reply["jobs"]
                ]
                while not stop.is_set():  # an ack refused with 503 is sent again
                    acked = await call("/worker/ack", {"workerId": f"w{index}", "results": results})
                    if acked is not None:
                        completed.update(
                            r["jobId"]
                            for r in acked["results"]
                            if r["outcome"] == "accepted" and r["state"] == "succeeded"
                        )
                        break

        tasks = [
            asyncio.ensure_future(producer()),
            *(asyncio.ensure_future(worker(i)) for i in range(3)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def ready(broker: BrokerProcess, http: aiohttp.ClientSession) -> int:
    async with http.get(f"{broker.url}/readyz") as response:
        return response.status


async def submit(
    broker: BrokerProcess,
    http: aiohttp.ClientSession,
    n: int,
    submitted: set[str],
    job_type: str = "outage",
) -> int:
    headers = {"Authorization": f"Bearer {broker.token()}"}
    jobs = [{"jobType": job_type, "payload": {"flood": n, "i": i}} for i in range(25)]
    async with http.post(f"{broker.url}{BASE}/jobs", json={"jobs": jobs}, headers=headers) as r:
        if r.status == 201:
            submitted.update(job["jobId"] for job in (await r.json())["jobs"])
        return r.status


async def claim_now(broker: BrokerProcess, http: aiohttp.ClientSession) -> int:
    """One claim (and nothing else); answered from memory whatever the database does."""
    headers = {"Authorization": f"Bearer {broker.token()}"}
    body = {"workerId": "probe", "jobTypes": ["probe"], "maxJobs": 5, "leaseSeconds": 60}
    async with http.post(f"{broker.url}{BASE}/worker/claim", json=body, headers=headers) as r:
        assert r.status == 200
        return len((await r.json())["jobs"])


async def test_postgres_stop_and_start_under_load_loses_nothing(database: str) -> None:
    broker = BrokerProcess(database, extra_env={"BROKER_MAX_BACKLOG": "2000"})
    broker.start()
    submitted: set[str] = set()
    completed: set[str] = set()
    seen: Counter[int] = Counter()
    stop = asyncio.Event()
    try:
        running = asyncio.ensure_future(load(broker, submitted, completed, seen, stop))
        async with session() as http:
            assert await submit(broker, http, -1, submitted, "probe") == 201
            await asyncio.sleep(1.0)
            assert await ready(broker, http) == 200
            before = (len(submitted), len(completed))
            cluster("stop")
            await asyncio.sleep(1.0)
            assert await ready(broker, http) == 503
            # claims are served from memory, at once
            assert await asyncio.wait_for(claim_now(broker, http), 2.0) > 0
            # many producers at once: the buffer fills and the rest are refused, not held
            flood = [asyncio.ensure_future(submit(broker, http, n, submitted)) for n in range(150)]
            await asyncio.sleep(2.0)
            refused = sum(f.done() and f.result() == 503 for f in flood)
            assert refused > 0, "the bounded buffer never filled: no BACKPRESSURE seen"
            cluster("start")
            for _ in range(300):  # it reconnects by itself and writes what it held
                if await ready(broker, http) == 200:
                    break
                await asyncio.sleep(0.1)
            assert await ready(broker, http) == 200
            statuses = Counter(await asyncio.gather(*flood))
            assert set(statuses) <= {201, 503} and statuses[201] > 0
            await asyncio.sleep(1.0)
            stop.set()
            await running
        assert len(submitted) > before[0] and len(completed) > before[1]
        broker.kill()  # no clean stop: what was answered 2xx must already be stored
        rows, finished = await read_postgres(database)
        assert check_ledger(rows, finished, submitted, completed) >= len(submitted)
    finally:
        stop.set()
        broker.stop()
