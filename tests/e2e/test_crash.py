"""Crash safety: SIGKILL the broker under load, restart it, and check what it promised.

Promises: every submission answered 201 exists after the restart, every
completion answered 200 ("accepted", "succeeded") is terminal, and the stored
history agrees with the stored state. The broker is a real subprocess on the
SQLite ledger; it is killed at random moments several times in a row.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3

import aiohttp
import orjson

from broker import states
from broker.api.ids import parse_job_id
from loadtests.broker_process import BrokerProcess, session

BASE = "/api/v1/orchestrator"
KILLS = 3


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


def check_ledger(path: str, submitted: set[str], completed: set[str]) -> dict[str, int]:
    """Read the SQLite ledger directly: current state = newest history row, else the job row."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = {
        jid: (state, last_token, last_status)
        for jid, state, last_token, last_status in db.execute(
            "SELECT jid, state, last_token, last_status FROM jobs"
        )
    }
    finished: set[tuple[int, int, str]] = set()
    for jid, state, last_token, last_status, token, status in db.execute(
        "SELECT jid, state, last_token, last_status, token, status FROM history ORDER BY seq"
    ):
        rows[jid] = (state, last_token, last_status)
        if status:
            finished.add((jid, token, status))
    db.close()
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
    return {"jobs": len(rows), "succeeded": sum(r[0] == states.SUCCEEDED for r in rows.values())}


async def test_sigkill_under_load_loses_nothing_promised() -> None:
    rng = random.Random(2026)
    broker = BrokerProcess()
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
            figures = check_ledger(str(broker.dir / "ledger.db"), submitted, completed)
            assert figures["jobs"] >= len(submitted)
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
