"""The broker as a real subprocess with SDK workers over HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from broker.sdk import Producer, Worker
from loadtests.broker_process import BrokerProcess, session

BASE = "/api/v1/orchestrator"


@pytest.fixture
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess()
    process.start()
    yield process
    process.stop()


async def test_ten_thousand_jobs_eight_workers_each_succeeds_once(broker: BrokerProcess) -> None:
    token = broker.token()
    seen: Counter[str] = Counter()

    async def handler(job: dict[str, Any]) -> dict[str, int]:
        seen[job["jobId"]] += 1
        return {"n": job["payload"]["n"]}

    workers = [
        Worker(broker.url, token, f"e2e-{i}", ["e2e.job"], handler, concurrency=64, wait_ms=500)
        for i in range(8)
    ]
    running = [asyncio.create_task(w.run()) for w in workers]
    submitted: list[str] = []
    async with Producer(broker.url, token) as producer:
        for start in range(0, 10_000, 1_000):
            jobs = [{"jobType": "e2e.job", "payload": {"n": start + i}} for i in range(1_000)]
            submitted += [job["jobId"] for job in await producer.submit(jobs)]
        for _ in range(600):
            if sum(w.succeeded for w in workers) >= 10_000:
                break
            await asyncio.sleep(0.1)
        for worker in workers:
            worker.stop()
        await asyncio.gather(*running)
        assert len(set(submitted)) == 10_000
        assert set(seen) == set(submitted) and max(seen.values()) == 1, "a job ran twice"
        assert sum(w.succeeded for w in workers) == 10_000
        assert sum(w.failed + w.lost for w in workers) == 0
        for job_id in submitted[::997]:
            job = await producer.get(job_id)
            assert job["state"] == "succeeded" and job["attempt"] == 1
            assert job["attempts"][0]["status"] == "succeeded"
    async with session() as http, http.get(f"{broker.url}/metrics") as response:
        text = await response.text()
    assert 'orchestrator_jobs_total{state="succeeded"} 10000' in text


async def test_silent_worker_loses_its_lease_and_its_late_ack_conflicts(
    broker: BrokerProcess,
) -> None:
    headers = {"Authorization": f"Bearer {broker.token()}"}
    async with session() as http:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(f"{broker.url}{BASE}{path}", json=body, headers=headers) as r:
                assert r.status in (200, 201), await r.text()
                return await r.json()  # type: ignore[no-any-return]

        await post("/jobs", {"jobs": [{"jobType": "e2e.slow", "payload": {}}]})
        claim = {"jobTypes": ["e2e.slow"], "maxJobs": 1, "leaseSeconds": 1}
        (first,) = (await post("/worker/claim", {"workerId": "silent", **claim}))["jobs"]
        # the silent worker sends no heartbeat; another worker's long poll gets the job back
        second_claim = await post("/worker/claim", {"workerId": "other", **claim, "waitMs": 5000})
        (second,) = second_claim["jobs"]
        assert second["jobId"] == first["jobId"] and second["attempt"] == 2
        assert second["leaseId"] != first["leaseId"]
        late = await post(
            "/worker/ack",
            {
                "workerId": "silent",
                "results": [
                    {"jobId": first["jobId"], "leaseId": first["leaseId"], "status": "succeeded"}
                ],
            },
        )
        assert late["results"] == [{"jobId": first["jobId"], "outcome": "conflict"}]
        beat = await post(
            "/worker/heartbeat",
            {
                "workerId": "silent",
                "leases": [{"jobId": first["jobId"], "leaseId": first["leaseId"]}],
            },
        )
        assert beat["leases"][0]["status"] == "lost"
        done = await post(
            "/worker/ack",
            {
                "workerId": "other",
                "results": [
                    {"jobId": second["jobId"], "leaseId": second["leaseId"], "status": "succeeded"}
                ],
            },
        )
        assert done["results"][0]["outcome"] == "accepted"
