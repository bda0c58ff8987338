"""The client SDK against a real broker over real HTTP (SQLite ledger in tmp_path).

The SDK itself only speaks HTTP; these tests look inside the server
(``server.broker``) to check what it did, and use tiny aiohttp servers where
a failure has to be staged exactly (503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broker import states
from broker.api.auth import issue_token
from broker.api.ids import parse_job_id
from broker.config import Config
from broker.engine import EngineSettings
from broker.sdk import ApiError, NonRetryable, Producer, RetryAfter, RetryPolicy, Worker
from broker.sdk.client import API_BASE, Backoff, Client
from broker.server import Server
from broker.service import ServiceSettings

TENANT = "tenant-a"
SCOPES = "orch:read orch:operate orch:worker"
FAST = RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05, budget_s=5.0)


class Broker:
    """A started server with a token and a producer for its tenant."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.token = issue_token(server.keys, TENANT, SCOPES)
        self.producer = Producer(self.url, self.token, retry=FAST)

    def count(self, state: int) -> int:
        return self.server.broker.engine.state_counts[state]

    def worker(self, handler: Callable[[dict[str, Any]], Awaitable[Any]], **kw: Any) -> Worker:
        kw.setdefault("wait_ms", 500)
        return Worker(self.url, self.token, "w-1", ["t"], handler, **kw)


def config(tmp_path: Path, port: int = 0) -> Config:
    # short retry backoff so "failed, then retried" tests take milliseconds
    engine = EngineSettings(retry_base_ms=20, retry_cap_ms=50)
    return Config(
        port=port,
        store=f"sqlite:///{tmp_path}/ledger.db",
        var_dir=tmp_path / "var",
        service=ServiceSettings(engine=engine),
    )


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    server = Server(config(tmp_path))
    await server.start()
    b = Broker(server)
    yield b
    await b.producer.close()
    await server.stop()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for state reached over the network (no clock to drive here)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not predicate():
        assert loop.time() < give_up, "condition not reached in time"
        await asyncio.sleep(0.01)


async def submit(b: Broker, n: int, **fields: Any) -> list[str]:
    jobs = [{"jobType": "t", "payload": {"n": i}, **fields} for i in range(n)]
    return [job["jobId"] for job in await b.producer.submit(jobs)]


async def stop(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(task, 10)


# -- producer --------------------------------------------------------------------------------
async def test_submit_and_get_round_trip(broker: Broker) -> None:
    replies = await broker.producer.submit(
        [
            {"jobType": "t", "payload": {"a": 1}, "priority": 7},
            {"jobType": "t", "payload": [1, 2], "maxAttempts": 2},
        ]
    )
    assert [r["state"] for r in replies] == ["ready", "ready"]
    first = await broker.producer.get(replies[0]["jobId"])
    assert first["payload"] == {"a": 1} and first["priority"] == 7 and first["state"] == "ready"
    assert (await broker.producer.get(replies[1]["jobId"]))["maxAttempts"] == 2

    one = await broker.producer.submit_one("t", {"b": 2}, idempotency_key="once", priority=1)
    again = await broker.producer.submit_one("t", {"b": 2}, idempotencyKey="once")
    assert again == {**one, "deduplicated": True}

    with pytest.raises(ApiError) as refused:
        await broker.producer.get("00000000-0000-7000-8000-000000000000")
    assert refused.value.status == 404 and refused.value.code == "NOT_FOUND"
    assert refused.value.trace_id


async def test_same_idempotency_key_replays_the_same_jobs(broker: Broker) -> None:
    async with Client(broker.url, broker.token) as client:
        body = {"jobs": [{"jobType": "t", "payload": {"x": 1}}, {"jobType": "t", "payload": {}}]}
        headers = {"Idempotency-Key": "retry-me"}
        path = f"{API_BASE}/jobs"
        first = await client.request_retrying("POST", path, body, policy=FAST, headers=headers)
        second = await client.request_retrying("POST", path, body, policy=FAST, headers=headers)
        assert second == first
        assert broker.count(states.READY) == 2
        with pytest.raises(ApiError) as conflict:
            await client.request(
                "POST", path, {"jobs": [{"jobType": "t", "payload": 2}]}, headers=headers
            )
        assert conflict.value.code == "IDEMPOTENCY_CONFLICT"


async def fake_server(handler: Callable[[web.Request], Awaitable[web.Response]]) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def url_of(runner: web.AppRunner) -> str:
    port = runner.addresses[0][1]
    return f"http://127.0.0.1:{port}"


async def test_producer_retries_503_honouring_retry_after() -> None:
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Idempotency-Key"))
        if len(seen) <= 2:
            return web.json_response(
                {"error": {"code": "BACKPRESSURE", "message": "busy", "traceId": "t"}},
                status=503,
                headers={"Retry-After": "0"},
            )
        return web.json_response(
            {"jobs": [{"jobId": "j", "state": "ready", "deduplicated": False}]}, status=201
        )

    runner = await fake_server(answer)
    try:
        async with Producer(url_of(runner), "token", retry=FAST) as producer:
            assert (await producer.submit_one("t", {}))["jobId"] == "j"
            assert len(seen) == 3 and seen[0] is not None and len(set(seen)) == 1
            seen.clear()
            await producer.submit_one("t", {})
            assert len(set(seen)) == 1 and len(seen) == 3  # a new call, a new key
    finally:
        await runner.cleanup()


async def test_retry_after_is_a_floor_within_the_budget() -> None:
    policy = RetryPolicy(attempts=5, base_s=0.1, cap_s=1.0, budget_s=5.0)
    busy = ApiError(503, "BACKPRESSURE", "busy", retry_after=2.0)
    assert all(2.0 <= policy.delay(n, 2.0) <= 2.3 for n in range(5))
    backoff = Backoff(policy)
    assert (delay := backoff.next_delay(busy)) is not None and delay >= 2.0
    assert backoff.next_delay(ApiError(503, "BACKPRESSURE", "busy", retry_after=10.0)) is None
    assert backoff.next_delay(ApiError(400, "VALIDATION_FAILED", "no")) is None


async def test_producer_gives_up_and_does_not_retry_refusals() -> None:
    calls: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        calls.append(1)
        code, status = ("VALIDATION_FAILED", 400) if request.method == "POST" else ("X", 503)
        return web.json_response(
            {"error": {"code": code, "message": "no", "traceId": "tr"}},
            status=status,
            headers={"Retry-After": "0"},
        )

    runner = await fake_server(answer)
    try:
        async with Producer(url_of(runner), "token", retry=FAST) as producer:
            with pytest.raises(ApiError) as refused:
                await producer.submit_one("t", {})
            assert refused.value.code == "VALIDATION_FAILED" and len(calls) == 1
            with pytest.raises(ApiError) as busy:
                await producer.get("x")
            assert busy.value.status == 503 and busy.value.retry_after == 0
            assert len(calls) == 1 + FAST.attempts
    finally:
        await runner.cleanup()


async def test_producer_retries_refused_connections_then_raises() -> None:
    async with Producer(f"http://127.0.0.1:{free_port()}", "token", retry=FAST) as producer:
        with pytest.raises(OSError):
            await producer.submit_one("t", {})


# -- worker ------------------------------------------------------------------------------------
async def test_worker_runs_2000_jobs_exactly_once(broker: Broker) -> None:
    seen: Counter[str] = Counter()
    running = peak = 0

    async def handle(job: dict[str, Any]) -> dict[str, Any]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen[job["jobId"]] += 1
        await asyncio.sleep(0)
        running -= 1
        return {"double": job["payload"]["n"] * 2}

    ids = await submit(broker, 2000)
    worker = broker.worker(handle, concurrency=32)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.succeeded == 2000, timeout=20)
    await stop(worker, task)

    assert set(seen) == set(ids) and set(seen.values()) == {1}
    assert 1 < peak <= 32
    assert (worker.claimed, worker.failed, worker.lost) == (2000, 0, 0)
    assert broker.count(states.SUCCEEDED) == 2000 and broker.count(states.LEASED) == 0
    last = await broker.producer.get(ids[-1])
    assert last["state"] == "succeeded" and last["attempt"] == 1
    assert last["attempts"][0]["output"] == {"double": 2 * 1999}


async def test_failure_is_retried_then_succeeds(broker: Broker) -> None:
    async def handle(job: dict[str, Any]) -> str:
        if job["attempt"] == 1:
            raise ConnectionResetError("upstream hung up")
        return "ok"

    [job_id] = await submit(broker, 1)
    worker = broker.worker(handle)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.succeeded == 1)
    await stop(worker, task)

    job = await broker.producer.get(job_id)
    assert job["state"] == "succeeded" and job["attempt"] == 2 and worker.failed == 1
    first = job["attempts"][0]
    assert first["status"] == "failed"
    assert first["error"] == {
        "class": "ConnectionResetError",
        "message": "upstream hung up",
        "retryable": True,
    }


async def test_non_retryable_goes_dead_and_timeouts_are_timed_out(broker: Broker) -> None:
    async def handle(job: dict[str, Any]) -> None:
        kind = job["payload"]["kind"]
        if kind == "bad":
            raise NonRetryable("malformed input")
        if kind == "slow" and job["attempt"] == 1:
            await asyncio.wait_for(asyncio.sleep(1), 0.01)
        if kind == "later" and job["attempt"] == 1:
            raise RetryAfter(0.05, "upstream said later")

    replies = await broker.producer.submit(
        [{"jobType": "t", "payload": {"kind": k}} for k in ("bad", "slow", "later")]
    )
    worker = broker.worker(handle)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.succeeded == 2 and worker.failed == 3)
    await stop(worker, task)

    bad, slow, later = [await broker.producer.get(r["jobId"]) for r in replies]
    assert bad["state"] == "dead" and bad["attempt"] == 1
    assert bad["attempts"][0]["error"] == {
        "class": "NonRetryable",
        "message": "malformed input",
        "retryable": False,
    }
    assert slow["state"] == "succeeded" and slow["attempts"][0]["status"] == "timed_out"
    assert later["state"] == "succeeded"
    assert later["attempts"][0]["error"]["retryAfterSeconds"] == 0.05


async def test_heartbeats_keep_a_slow_job_leased(broker: Broker) -> None:
    async def handle(job: dict[str, Any]) -> str:
        await asyncio.sleep(3.0)  # longer than the 2 s lease
        return "done"

    [job_id] = await submit(broker, 1)
    worker = broker.worker(handle, lease_seconds=2)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.succeeded == 1)
    await stop(worker, task)

    job = await broker.producer.get(job_id)
    assert job["state"] == "succeeded" and job["attempt"] == 1
    assert broker.server.broker.ticker.expired == 0 and worker.lost == 0


async def test_lost_lease_cancels_the_handler_and_is_not_acked(broker: Broker) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handle(job: dict[str, Any]) -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    [job_id] = await submit(broker, 1)
    worker = broker.worker(handle, lease_seconds=3)  # heartbeat every second
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    await broker.server.broker.cancel(TENANT, jid_of(job_id))
    await asyncio.wait_for(cancelled.wait(), 5)
    await eventually(lambda: worker.lost == 1)
    await stop(worker, task)

    assert (await broker.producer.get(job_id))["state"] == "canceled"
    assert worker.succeeded == 0 and worker.in_flight == 0


async def test_result_of_a_revoked_lease_is_dropped(broker: Broker) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def handle(job: dict[str, Any]) -> str:
        started.set()
        await release.wait()
        return "too late"

    [job_id] = await submit(broker, 1)
    worker = broker.worker(handle)  # 30 s lease: no heartbeat before the ack
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    await broker.server.broker.cancel(TENANT, jid_of(job_id))
    release.set()
    await eventually(lambda: worker.lost == 1)  # the ack was answered "conflict"
    await stop(worker, task)

    job = await broker.producer.get(job_id)
    assert job["state"] == "canceled" and worker.succeeded == 0


async def test_stop_drains_in_flight_work_and_claims_no_more(broker: Broker) -> None:
    started: list[str] = []

    async def handle(job: dict[str, Any]) -> None:
        started.append(job["jobId"])
        await asyncio.sleep(0.3)

    await submit(broker, 8)
    worker = broker.worker(handle, concurrency=4)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: len(started) == 4)
    await stop(worker, task)

    assert worker.succeeded == 4 and len(started) == 4
    assert broker.count(states.SUCCEEDED) == 4 and broker.count(states.READY) == 4
    assert broker.count(states.LEASED) == 0


async def test_drain_timeout_hands_unfinished_jobs_back(broker: Broker) -> None:
    async def handle(job: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    [job_id] = await submit(broker, 1)
    worker = broker.worker(handle, drain_timeout_s=0.1)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.in_flight == 1)
    await stop(worker, task)

    job = await broker.producer.get(job_id)
    assert job["state"] in ("pending", "ready") and worker.failed == 1
    assert job["attempts"][0]["error"]["class"] == "WorkerStopped"


async def test_sigterm_drains(broker: Broker) -> None:
    done: list[str] = []

    async def handle(job: dict[str, Any]) -> None:
        await asyncio.sleep(0.1)
        done.append(job["jobId"])

    await submit(broker, 2)
    worker = broker.worker(handle)
    worker.install_signal_handlers([signal.SIGTERM])
    loop = asyncio.get_running_loop()
    try:
        task = asyncio.create_task(worker.run())
        await eventually(lambda: worker.in_flight == 2)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    assert len(done) == 2 and worker.succeeded == 2


async def test_worker_waits_out_a_broker_that_is_not_up_yet(tmp_path: Path) -> None:
    port = free_port()
    server = Server(config(tmp_path, port))
    token = issue_token(server.keys, TENANT, SCOPES)
    handled: list[str] = []

    async def handle(job: dict[str, Any]) -> None:
        handled.append(job["jobId"])

    worker = Worker(server.url, token, "early", ["t"], handle, wait_ms=500)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)  # claims are refused connections meanwhile
    assert not task.done()
    await server.start()
    try:
        async with Producer(server.url, token) as producer:
            [reply] = await producer.submit([{"jobType": "t", "payload": {}}])
        await eventually(lambda: worker.succeeded == 1)
        await stop(worker, task)
    finally:
        await server.stop()
    assert handled == [reply["jobId"]]


async def test_refused_claim_ends_run(broker: Broker) -> None:
    async def handle(job: dict[str, Any]) -> None:
        return None

    worker = Worker(broker.url, broker.token, "w", ["NOT A TYPE"], handle)
    with pytest.raises(ApiError) as refused:
        await asyncio.wait_for(worker.run(), 5)
    assert refused.value.code == "VALIDATION_FAILED"


def jid_of(job_id: str) -> int:
    parsed = parse_job_id(job_id)
    assert parsed is not None
    return parsed[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_stopping_the_server_answers_parked_long_polls_at_once(tmp_path: Path) -> None:
    """A claim parked for 30 s must not hold the shutdown until the site's
    10-second grace ends and cuts it: it is answered, empty, at once."""
    server = Server(config(tmp_path))
    await server.start()
    token = issue_token(server.keys, TENANT, "orch:worker")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/api/v1/orchestrator/worker/claim"
    poll = {"workerId": "w", "jobTypes": ["none"], "maxJobs": 1, "waitMs": 30_000}
    async with aiohttp.ClientSession() as http:
        claim = asyncio.create_task(http.post(url, json=poll, headers=headers))
        await eventually(lambda: bool(server.broker.waiters))  # the claim is parked
        await asyncio.wait_for(server.stop(), 5)
        async with await asyncio.wait_for(claim, 5) as reply:
            assert reply.status == 200 and await reply.json() == {"jobs": []}


async def test_stopping_the_server_ends_open_event_streams_at_once(tmp_path: Path) -> None:
    """An open SSE stream must not hold the shutdown (and its final flush) until
    aiohttp's handler timeout: the streams end first."""
    server = Server(config(tmp_path))
    await server.start()
    token = issue_token(server.keys, TENANT, "orch:read")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/api/v1/orchestrator/events"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        assert reply.status == 200
        await reply.content.readuntil(b"\n\n")  # the stream is open
        stopping = asyncio.create_task(server.stop())
        assert await asyncio.wait_for(reply.content.read(), 10) == b""  # ended
        await asyncio.wait_for(stopping, 10)
