"""A DAG run end to end: broker subprocess, SDK workers, a SIGKILL in the middle."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from broker.sdk import Producer, Worker
from loadtests.broker_process import BrokerProcess

CHAINS, LENGTH = 6, 15


@pytest.fixture
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess()
    process.start()
    yield process
    process.stop()


def pipeline() -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Six chains of fifteen steps fanning out of one fetch and into one export."""
    parents: dict[str, list[str]] = {"fetch": []}
    for c in range(CHAINS):
        for s in range(LENGTH):
            parents[f"c{c}s{s}"] = [f"c{c}s{s - 1}" if s else "fetch"]
    parents["export"] = [f"c{c}s{LENGTH - 1}" for c in range(CHAINS)]
    jobs = [
        {"jobType": "dag.step", "payload": {"key": k}, "key": k, "dependsOn": deps}
        for k, deps in parents.items()
    ]
    return jobs, parents


async def wait_for(condition: Any, timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_run_survives_a_crash_and_keeps_dependency_order(broker: BrokerProcess) -> None:
    token = broker.token()
    jobs, parents = pipeline()
    finished: Counter[str] = Counter()  # runs whose handler returned (at least once)
    early: list[str] = []

    async def handler(job: dict[str, Any]) -> dict[str, str]:
        key = job["payload"]["key"]
        if any(not finished[p] for p in parents[key]):
            early.append(key)
        await asyncio.sleep(0.005)
        finished[key] += 1
        return {"key": key}

    def workers() -> list[Worker]:
        return [
            Worker(broker.url, token, f"dag-{i}", ["dag.step"], handler, concurrency=8,
                   wait_ms=200, lease_seconds=3)
            for i in range(3)
        ]  # fmt: skip

    first = workers()
    running = [asyncio.create_task(w.run()) for w in first]
    async with Producer(broker.url, token) as producer:
        created = await producer.create_run(jobs, run_token="e2e-run")
        run_id = created["runId"]
        await wait_for(lambda: len(finished) >= 40)
        broker.kill()  # SIGKILL in the middle of the run
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        broker.start()
        again = await producer.create_run(jobs, run_token="e2e-run")
        assert again["runId"] == run_id and again["deduplicated"] is True
        second = workers()
        running = [asyncio.create_task(w.run()) for w in second]
        await wait_for(lambda: len(finished) == len(parents))
        summary: dict[str, Any] = {}
        for _ in range(200):
            summary = await producer.run(run_id)
            if summary["status"] != "running":
                break
            await asyncio.sleep(0.05)
        for worker in second:
            worker.stop()
        await asyncio.gather(*running)
        assert early == [], f"started before their parents finished: {early}"
        assert summary["status"] == "succeeded", summary
        assert summary["counts"]["succeeded"] == len(parents) == summary["jobCount"]
        dag = await producer.run(run_id, "dag")
        assert len(dag["edges"]) == sum(len(p) for p in parents.values())
