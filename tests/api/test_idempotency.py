"""The ``Idempotency-Key`` header: replay on the same body, conflict on another."""

from __future__ import annotations

import asyncio
import json

import pytest

from .conftest import ACK, OTHER, SUBMIT, Api, assert_envelope, job


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key, "Content-Type": "application/json"}


async def test_same_key_same_body_replays_the_first_answer(api: Api) -> None:
    body = json.dumps({"jobs": [job(), job("other")]}).encode()
    status, first = await api.post(SUBMIT, raw=body, headers=keyed("req-1"))
    assert status == 201
    before = await api.snapshot()
    async with api.client.post(
        SUBMIT, data=body, headers={**api.headers(), **keyed("req-1")}
    ) as resp:
        assert resp.status == 201
        again = await resp.json()
    assert again == first
    assert await api.snapshot() == before
    assert len(api.broker.engine.jobs) == 2


async def test_same_key_different_body_conflicts(api: Api) -> None:
    status, _ = await api.post(SUBMIT, {"jobs": [job()]}, headers=keyed("req-2"))
    assert status == 201
    before = await api.snapshot()
    status, body = await api.post(SUBMIT, {"jobs": [job(priority=9)]}, headers=keyed("req-2"))
    assert_envelope(status, body, "IDEMPOTENCY_CONFLICT", 409)
    assert await api.snapshot() == before


async def test_same_key_other_tenant_does_not_collide(api: Api) -> None:
    body = {"jobs": [job()]}
    _, mine = await api.post(SUBMIT, body, headers=keyed("shared"))
    status, theirs = await api.post(SUBMIT, body, headers=keyed("shared"), tenant=OTHER)
    assert status == 201 and theirs["jobs"][0]["jobId"] != mine["jobs"][0]["jobId"]
    status, theirs = await api.post(
        SUBMIT, {"jobs": [job(priority=1)]}, headers=keyed("x"), tenant=OTHER
    )
    assert status == 201
    status, mine = await api.post(SUBMIT, {"jobs": [job(priority=2)]}, headers=keyed("x"))
    assert status == 201
    assert len(api.broker.engine.jobs) == 4


async def test_same_key_other_path_does_not_collide(api: Api) -> None:
    await api.submit(job())
    [claimed] = await api.claim()
    status, _ = await api.post(SUBMIT, {"jobs": [job()]}, headers=keyed("path-key"))
    assert status == 201
    ack = {
        "workerId": "w-1",
        "results": [
            {"jobId": claimed["jobId"], "leaseId": claimed["leaseId"], "status": "succeeded"}
        ],
    }
    status, body = await api.post(ACK, ack, headers=keyed("path-key"))
    assert status == 200, body
    assert body["results"][0]["outcome"] == "accepted"


async def test_ack_replay_with_the_same_key(api: Api) -> None:
    await api.submit(job())
    [claimed] = await api.claim()
    ack = {
        "workerId": "w-1",
        "results": [{"jobId": claimed["jobId"], "leaseId": claimed["leaseId"], "status": "failed"}],
    }
    status, first = await api.post(ACK, ack, headers=keyed("ack-1"))
    assert status == 200 and first["results"][0]["state"] == "pending"
    before = await api.snapshot()
    status, again = await api.post(ACK, ack, headers=keyed("ack-1"))
    assert status == 200 and again == first
    assert await api.snapshot() == before
    ack["results"][0]["status"] = "succeeded"
    status, body = await api.post(ACK, ack, headers=keyed("ack-1"))
    assert_envelope(status, body, "IDEMPOTENCY_CONFLICT", 409)
    assert await api.snapshot() == before


@pytest.mark.parametrize("key", ["k" * 257, "tab\there"], ids=["too-long", "unprintable"])
async def test_bad_key_is_refused(api: Api, key: str) -> None:
    before = await api.snapshot()
    status, body = await api.post(SUBMIT, {"jobs": [job()]}, headers={"Idempotency-Key": key})
    assert_envelope(status, body, "VALIDATION_FAILED", 400)
    assert await api.snapshot() == before


async def test_concurrent_requests_with_one_key_create_once(api: Api) -> None:
    body = {"jobs": [job(), job("other")]}
    replies = await asyncio.gather(
        *[api.post(SUBMIT, body, headers=keyed("race")) for _ in range(5)]
    )
    assert {status for status, _ in replies} == {201}
    assert all(reply == replies[0][1] for _, reply in replies)
    assert len(api.broker.engine.jobs) == 2
