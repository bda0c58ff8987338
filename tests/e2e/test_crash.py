"""Crash safety: SIGKILL the broker under load, restart it, and check what it promised.

Promises: every submission answered 201 exists after the restart, every
completion answered 200 ("accepted", "succeeded") is terminal, and the stored
history agrees with the stored state (read straight from the store). The
broker is a real subprocess on the SQLite ledger, then on a fresh Postgres
database; it is killed at random moments several times in a row.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from broker import states
from broker.api.ids import parse_job_id
from loadtests.broker_process import BrokerProcess, session

BASE = "/api/v1/orchestrator"
KILLS = 3
POSTGRES_ADMIN = os.environ.get(
    "BROKER_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def load(
    broker: BrokerProcess, submitted: set[str], completed: set[str], stop: asyncio.Event
) -> None:
    """Submit and drain until ``stop`` or until the broker dies; record what was promised."""
    headers = {"Authorization": f"Bearer {broker.token()}"}
    async with session() as http:

        async def call(path: str, body: object) -> dict:
            async with http.post(
                f"{broker.url}{BASE}{path}", data=orjson.dumps(body), headers=headers
            ) as response:
                assert response.status in (200, 201), await response.text()
                return orjson.loads(await response.read())

        async def producer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                jobs = [{"jobType": "crash", "payload": {"n": n, "i": i}} for i in range(25)]
                reply = await call("/jobs", {"jobs": jobs})
                submitted.update(job["jobId"] for job in reply["jobs"])

        async def worker(index: int) -> None:
            while not stop.is_set():
                reply = await call(
                    "/worker/claim",
                    {
                        "workerId": f"w{index}",
                        "jobTypes": ["crash"],
                        "maxJobs": 20,
                        "leaseSeconds": 2,
                        "waitMs": 200,
                    },
                )
                if not reply["jobs"]:
                    continue
                results = [
                    {"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"}
                    for j in reply["jobs"]
                ]
                acked = await call("/worker/ack", {"workerId": f"w{index}", "results": results})
                completed.update(
                    r["jobId"]
                    for r in acked["results"]
                    if r["outcome"] == "accepted" and r["state"] == "succeeded"
                )

        tasks = [
            asyncio.ensure_future(producer()),
            *(asyncio.ensure_future(worker(i)) for i in range(3)),
        ]
        try:
            await asyncio.gather(*tasks)
        except (aiohttp.ClientError, AssertionError, ConnectionError):
            pass  # the broker was killed under us
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


State = dict[int, tuple[int, int, str | None]]  # jid -> (state, last token, last status)


def read_sqlite(path: str) -> tuple[State, set[tuple[int, int, str]]]:
    """Current state of every job (newest history row, else the job row) and finished attempts."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    jobs = db.execute("SELECT jid, state, last_token, last_status FROM jobs").fetchall()
    history = db.execute(
        "SELECT jid, state, last_token, last_status, token, status FROM history ORDER BY seq"
    ).fetchall()
    db.close()
    return fold(jobs, history)


async def read_postgres(dsn: str) -> tuple[State, set[tuple[int, int, str]]]:
    conn = await asyncpg.connect(dsn)
    jobs = await conn.fetch("SELECT jid, state, last_token, last_status FROM jobs")
    history = await conn.fetch(
        "SELECT jid, state, last_token, last_status, token, status FROM history ORDER BY seq"
    )
    await conn.close()
    return fold([tuple(r) for r in jobs], [tuple(r) for r in history])


def fold(jobs: list[Any], history: list[Any]) -> tuple[State, set[tuple[int, int, str]]]:
    rows: State = {jid: (state, token, status) for jid, state, token, status in jobs}
    finished: set[tuple[int, int, str]] = set()
    for jid, state, last_token, last_status, token, status in history:
        rows[jid] = (state, last_token, last_status)
        if status:
            finished.add((jid, token, status))
    return rows, finished


def check_ledger(
    rows: State, finished: set[tuple[int, int, str]], submitted: set[str], completed: set[str]
) -> int:
    for job_id in submitted:
        parsed = parse_job_id(job_id)
        assert parsed is not None and parsed[1] in rows, f"201 submission {job_id} lost"
    for job_id in completed:
        jid = parse_job_id(job_id)[1]  # type: ignore[index]
        assert rows[jid][0] == states.SUCCEEDED, f"200 completion {job_id} not terminal"
    for jid, (state, last_token, last_status) in rows.items():
        if state == states.SUCCEEDED:
            assert (jid, last_token, "succeeded") in finished, f"job {jid} history disagrees"
            assert last_status == "succeeded"
    return len(rows)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The ledger the broker runs on; Postgres gets a fresh database (a missing server fails)."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    name = f"crash_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_sigkill_under_load_loses_nothing_promised(store: str) -> None:
    rng = random.Random(2026)
    broker = BrokerProcess(None if store == "sqlite" else store)
    broker.start()
    submitted: set[str] = set()
    completed: set[str] = set()
    try:
        for _ in range(KILLS):
            stop = asyncio.Event()
            running = asyncio.ensure_future(load(broker, submitted, completed, stop))
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            broker.kill()  # SIGKILL at a random moment under load
            stop.set()
            await running
            if store == "sqlite":
                rows, finished = read_sqlite(str(broker.dir / "ledger.db"))
            else:
                rows, finished = await read_postgres(store)
            assert check_ledger(rows, finished, submitted, completed) >= len(submitted)
            broker.start()  # recovery: the same ledger, the same port
        # after the last restart everything left is still served and can finish
        headers = {"Authorization": f"Bearer {broker.token()}"}
        async with session() as http:
            sample = rng.sample(sorted(completed), min(20, len(completed)))
            for job_id in sample:
                async with http.get(f"{broker.url}{BASE}/jobs/{job_id}", headers=headers) as r:
                    assert r.status == 200 and (await r.json())["state"] == "succeeded"
            drained = 0
            while True:
                async with http.post(
                    f"{broker.url}{BASE}/worker/claim",
                    headers=headers,
                    json={"workerId": "final", "jobTypes": ["crash"], "maxJobs": 1000},
                ) as r:
                    jobs = (await r.json())["jobs"]
                if not jobs:
                    break
                results = [
                    {"jobId": j["jobId"], "leaseId": j["leaseId"], "status": "succeeded"}
                    for j in jobs
                ]
                async with http.post(
                    f"{broker.url}{BASE}/worker/ack",
                    headers=headers,
                    json={"workerId": "final", "results": results},
                ) as r:
                    assert r.status == 200
                drained += len(jobs)
        assert len(submitted) > 100 and len(completed) > 50
    finally:
        broker.stop()
