"""POST /worker/claim: the reply's fields, order, limits, tenancy and the long poll."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from .conftest import (
    CLAIM,
    NOW_MS,
    OTHER,
    TENANT,
    Api,
    assert_envelope,
    compact_digest,
    detail_fields,
    is_uuid7,
    job,
    parse_time,
    rfc3339,
)

CLAIM_FIELDS = {
    "jobId",
    "leaseId",
    "leaseUntil",
    "attempt",
    "maxAttempts",
    "jobType",
    "priority",
    "tenant",
    "project",
    "correlationId",
    "idempotencyKey",
    "runId",
    "payload",
    "payloadDigest",
    "retryHint",
}


async def test_every_field_of_a_claimed_job(api: Api) -> None:
    payload = {"url": "https://nvd.nist.gov/feed", "pages": [1, 2, 3], "ünï": "cödé", "n": None}
    [submitted] = await api.submit(
        job(
            "concelier.ingest",
            payload,
            priority=7,
            maxAttempts=3,
            leaseSeconds=45,
            project="proj-1",
            correlationId="corr-1",
            idempotencyKey="idem-1",
            runId="run-1",
            sourceHost="nvd.nist.gov",
            key="fetch",
        )
    )
    [claimed] = await api.claim(["concelier.ingest"])
    assert set(claimed) == CLAIM_FIELDS
    assert claimed["jobId"] == submitted["jobId"] and is_uuid7(claimed["jobId"])
    assert isinstance(claimed["leaseId"], str) and claimed["leaseId"]
    assert parse_time(claimed["leaseUntil"]) == NOW_MS + 45_000
    assert claimed["attempt"] == 1 and claimed["maxAttempts"] == 3
    assert claimed["jobType"] == "concelier.ingest" and claimed["priority"] == 7
    assert claimed["tenant"] == TENANT and claimed["project"] == "proj-1"
    assert claimed["correlationId"] == "corr-1" and claimed["idempotencyKey"] == "idem-1"
    assert claimed["runId"] == "run-1"
    assert claimed["payload"] == payload
    assert claimed["payloadDigest"] == compact_digest(payload)
    backoff = claimed["retryHint"]["backoffSeconds"]
    assert isinstance(backoff, int | float) and not isinstance(backoff, bool) and backoff >= 0


async def test_optional_fields_are_null_and_defaults_apply(api: Api) -> None:
    await api.submit(job(payload=[1, "two", {"three": 3}]))
    [claimed] = await api.claim()
    assert claimed["project"] is None and claimed["correlationId"] is None
    assert claimed["idempotencyKey"] is None and claimed["runId"] is None
    assert claimed["priority"] == 5 and claimed["maxAttempts"] == 5
    assert parse_time(claimed["leaseUntil"]) == NOW_MS + 30_000
    assert claimed["payloadDigest"] == compact_digest([1, "two", {"three": 3}])


async def test_lease_seconds_of_the_claim_wins(api: Api) -> None:
    await api.submit(job(leaseSeconds=45))
    [claimed] = await api.claim(leaseSeconds=10)
    assert parse_time(claimed["leaseUntil"]) == NOW_MS + 10_000


@pytest.mark.parametrize(
    "payload", [None, 0, "text", [], {}, 1.5, True, {"deep": [[[{"x": [1, {"y": "z"}]}]]]}]
)
async def test_payload_round_trips_with_its_digest(api: Api, payload: Any) -> None:
    await api.submit({"jobType": "scan", "payload": payload})
    [claimed] = await api.claim()
    assert claimed["payload"] == payload
    assert claimed["payloadDigest"] == compact_digest(payload)


async def test_priority_then_submission_order(api: Api) -> None:
    order = [(5, "a"), (9, "b"), (1, "c"), (9, "d"), (5, "e"), (0, "f"), (9, "g")]
    await api.submit(*[job(payload=name, priority=p) for p, name in order])
    claimed = await api.claim(max_jobs=100)
    assert [c["payload"] for c in claimed] == ["b", "d", "g", "a", "e", "c", "f"]


@pytest.mark.parametrize("types", [["a", "b"], ["b", "a"], ["b", "a", "b"]])
async def test_priority_then_submission_order_across_job_types(api: Api, types: list[str]) -> None:
    await api.submit(
        job("a", payload=1),
        job("a", payload=2),
        job("b", payload=3),
        job("a", payload=4),
        job("b", payload=5, priority=6),
        job("c", payload=6),
    )
    await api.submit(job("b", payload=7), job("a", payload=8))
    claimed = await api.claim(types, max_jobs=100)
    assert [c["payload"] for c in claimed] == [5, 1, 2, 3, 4, 7, 8]


async def test_priority_order_across_batches(api: Api) -> None:
    await api.submit(job(payload="low", priority=1))
    await api.submit(job(payload="high", priority=8))
    await api.submit(job(payload="low2", priority=1))
    claimed = [(await api.claim(max_jobs=1))[0]["payload"] for _ in range(3)]
    assert claimed == ["high", "low", "low2"]


@pytest.mark.parametrize("submitted,max_jobs", [(5, 3), (3, 5), (4, 4), (0, 2), (1, 1000)])
async def test_min_of_max_jobs_and_claimable(api: Api, submitted: int, max_jobs: int) -> None:
    if submitted:
        await api.submit(*[job(payload=i) for i in range(submitted)])
    claimed = await api.claim(max_jobs=max_jobs)
    assert len(claimed) == min(submitted, max_jobs)
    assert len({c["leaseId"] for c in claimed}) == len(claimed)


async def test_max_jobs_defaults_to_one(api: Api) -> None:
    await api.submit(job(), job())
    status, body = await api.post(CLAIM, {"workerId": "w", "jobTypes": ["scan"]})
    assert status == 200 and len(body["jobs"]) == 1


async def test_only_requested_job_types(api: Api) -> None:
    await api.submit(job("a"), job("b"), job("c"))
    claimed = await api.claim(["a", "c"], max_jobs=10)
    assert sorted(c["jobType"] for c in claimed) == ["a", "c"]


async def test_unknown_job_type_is_empty(api: Api) -> None:
    await api.submit(job())
    assert await api.claim(["never.submitted"]) == []
    assert len(api.broker.engine.ready) == 1


async def test_pending_jobs_are_not_claimable_until_due(api: Api) -> None:
    await api.submit(job(notBefore=rfc3339(NOW_MS + 5_000)))
    assert await api.claim() == []
    await api.advance(5_000)
    assert len(await api.claim()) == 1


async def test_another_tenants_jobs_are_never_returned(api: Api) -> None:
    await api.submit(job(payload="theirs"), tenant=OTHER)
    assert await api.claim(max_jobs=1000) == []
    await api.submit(job(payload="mine"))
    claimed = await api.claim(max_jobs=1000)
    assert [c["payload"] for c in claimed] == ["mine"] and claimed[0]["tenant"] == TENANT
    assert [c["payload"] for c in await api.claim(max_jobs=1000, tenant=OTHER)] == ["theirs"]


async def test_lease_ids_are_unique_and_attempt_grows(api: Api) -> None:
    await api.submit(job(maxAttempts=5))
    seen = set()
    for attempt in (1, 2, 3):
        [claimed] = await api.claim(leaseSeconds=1)
        assert claimed["attempt"] == attempt and claimed["leaseId"] not in seen
        seen.add(claimed["leaseId"])
        await api.advance(1_001)


# -- validation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "change,field",
    [
        ({"maxJobs": 0}, "maxJobs"),
        ({"maxJobs": 1001}, "maxJobs"),
        ({"maxJobs": "5"}, "maxJobs"),
        ({"maxJobs": True}, "maxJobs"),
        ({"maxJobs": -1}, "maxJobs"),
        ({"jobTypes": None}, "jobTypes"),
        ({"jobTypes": []}, "jobTypes"),
        ({"jobTypes": "scan"}, "jobTypes"),
        ({"jobTypes": ["Scan"]}, "jobTypes[0]"),
        ({"jobTypes": ["scan", 5]}, "jobTypes[1]"),
        ({"jobTypes": ["x"] * 65}, "jobTypes"),
        ({"waitMs": 30_001}, "waitMs"),
        ({"waitMs": -1}, "waitMs"),
        ({"waitMs": "10"}, "waitMs"),
        ({"leaseSeconds": 0}, "leaseSeconds"),
        ({"leaseSeconds": 3601}, "leaseSeconds"),
        ({"leaseSeconds": False}, "leaseSeconds"),
        ({"workerId": None}, "workerId"),
        ({"workerId": ""}, "workerId"),
        ({"workerId": 7}, "workerId"),
        ({"workerId": "w" * 129}, "workerId"),
        ({"workerId": "w\x00"}, "workerId"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=lambda v: str(v),
)
async def test_invalid_claim(api: Api, change: dict[str, Any], field: str) -> None:
    await api.submit(job())
    before = await api.snapshot()
    body = {"workerId": "w-1", "jobTypes": ["scan"], "maxJobs": 1, **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, reply = await api.post(CLAIM, body)
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert field in detail_fields(error)
    assert await api.snapshot() == before


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"claim"', b"null"])
async def test_claim_body_not_an_object(api: Api, raw: bytes) -> None:
    before = await api.snapshot()
    status, reply = await api.post(CLAIM, raw=raw, headers={"Content-Type": "application/json"})
    assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert await api.snapshot() == before


# -- long poll ------------------------------------------------------------------------
async def test_long_poll_returns_when_a_job_is_submitted(api: Api) -> None:
    began = time.monotonic()
    claiming = asyncio.ensure_future(api.claim(waitMs=5_000))
    await asyncio.sleep(0.05)
    assert not claiming.done()
    submitted_at = time.monotonic()
    [submitted] = await api.submit(job())
    claimed = await asyncio.wait_for(claiming, 2)
    done = time.monotonic()
    assert [c["jobId"] for c in claimed] == [submitted["jobId"]]
    assert done - submitted_at < 0.2 and done - began < 1.0


async def test_long_poll_returns_when_a_timer_releases_a_job(api: Api) -> None:
    await api.submit(job(notBefore=rfc3339(NOW_MS + 60_000)))
    claiming = asyncio.ensure_future(api.claim(waitMs=5_000))
    await asyncio.sleep(0.05)
    assert not claiming.done()
    released_at = time.monotonic()
    await api.advance(60_000)
    claimed = await asyncio.wait_for(claiming, 2)
    assert len(claimed) == 1 and time.monotonic() - released_at < 0.2


async def test_long_poll_returns_when_a_lease_expires(api: Api) -> None:
    await api.submit(job())
    [first] = await api.claim(leaseSeconds=1)
    claiming = asyncio.ensure_future(api.claim(waitMs=5_000))
    await asyncio.sleep(0.05)
    assert not claiming.done()
    await api.advance(1_000)
    [again] = await asyncio.wait_for(claiming, 0.5)
    assert again["jobId"] == first["jobId"] and again["attempt"] == 2


async def test_long_poll_empty_after_the_wait(api: Api) -> None:
    began = time.monotonic()
    claimed = await api.claim(waitMs=150)
    elapsed = time.monotonic() - began
    assert claimed == [] and 0.14 <= elapsed < 1.0


async def test_long_poll_ignores_other_tenants(api: Api) -> None:
    claiming = asyncio.ensure_future(api.claim(waitMs=200))
    await asyncio.sleep(0.05)
    await api.submit(job(), tenant=OTHER)
    assert await asyncio.wait_for(claiming, 2) == []
    assert len(api.broker.engine.ready) == 1


async def test_long_poll_waits_out_other_job_types(api: Api) -> None:
    claiming = asyncio.ensure_future(api.claim(["wanted"], waitMs=5_000))
    await asyncio.sleep(0.05)
    await api.submit(job("unwanted"))
    await asyncio.sleep(0.05)
    assert not claiming.done()
    await api.submit(job("wanted"))
    claimed = await asyncio.wait_for(claiming, 0.5)
    assert [c["jobType"] for c in claimed] == ["wanted"]


async def test_claim_with_nothing_and_no_wait_is_immediate(api: Api) -> None:
    began = time.monotonic()
    status, body = await api.post(CLAIM, {"workerId": "w", "jobTypes": ["scan"], "waitMs": 0})
    assert status == 200 and body == {"jobs": []} and time.monotonic() - began < 0.5
