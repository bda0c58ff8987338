"""GET /jobs/{jobId}: the job with its history; 404 alike for unknown and foreign ids."""

from __future__ import annotations

import pytest

from .conftest import (
    CLAIM,
    NOW_MS,
    OTHER,
    SUBMIT,
    Api,
    assert_envelope,
    compact_digest,
    job,
    parse_time,
    rfc3339,
)


async def test_job_view_fields(api: Api) -> None:
    payload = {"feed": "nvd", "page": 1}
    [submitted] = await api.submit(job("concelier.ingest", payload, priority=8, maxAttempts=4))
    view = await api.read(submitted["jobId"])
    assert view["jobId"] == submitted["jobId"]
    assert view["state"] == "ready" and view["attempt"] == 0 and view["maxAttempts"] == 4
    assert view["jobType"] == "concelier.ingest" and view["priority"] == 8
    assert view["payload"] == payload and view["payloadDigest"] == compact_digest(payload)
    assert parse_time(view["createdAt"]) == NOW_MS and parse_time(view["updatedAt"]) == NOW_MS
    assert view["attempts"] == [] and isinstance(view["transitions"], list)


async def test_attempts_history(api: Api) -> None:
    [submitted] = await api.submit(job(maxAttempts=3))
    status, first = await api.post(
        CLAIM, {"workerId": "runner-1", "jobTypes": ["scan"], "leaseSeconds": 10}
    )
    assert status == 200
    [first] = first["jobs"]
    api.clock.advance(2_000)
    await api.ack(
        {
            "jobId": first["jobId"],
            "leaseId": first["leaseId"],
            "status": "failed",
            "error": {"class": "http_503", "message": "down", "retryable": True},
            "output": {"partial": True},
        },
        worker="runner-1",
    )
    await api.advance(3_600_000)
    status, second = await api.post(
        CLAIM, {"workerId": "runner-2", "jobTypes": ["scan"], "leaseSeconds": 10}
    )
    [second] = second["jobs"]
    view = await api.read(submitted["jobId"])
    assert view["state"] == "leased" and view["attempt"] == 2
    assert parse_time(view["leaseUntil"]) == parse_time(second["leaseUntil"])
    await api.ack(
        {
            "jobId": second["jobId"],
            "leaseId": second["leaseId"],
            "status": "succeeded",
            "output": {"rows": 10},
        },
        worker="runner-2",
    )
    view = await api.read(submitted["jobId"])
    assert view["state"] == "succeeded" and view["attempt"] == 2
    one, two = view["attempts"]
    assert (one["attempt"], one["workerId"], one["leaseId"], one["status"]) == (
        1,
        "runner-1",
        first["leaseId"],
        "failed",
    )
    assert one["output"] == {"partial": True}
    assert one["error"] == {"class": "http_503", "message": "down", "retryable": True}
    assert parse_time(one["leasedAt"]) == NOW_MS
    assert parse_time(one["finishedAt"]) == NOW_MS + 2_000
    assert (two["attempt"], two["workerId"], two["leaseId"], two["status"]) == (
        2,
        "runner-2",
        second["leaseId"],
        "succeeded",
    )
    assert two["output"] == {"rows": 10} and two["error"] is None
    assert parse_time(view["updatedAt"]) > parse_time(view["createdAt"])


async def test_expired_attempt_is_in_the_history(api: Api) -> None:
    [submitted] = await api.submit(job())
    [claimed] = await api.claim(leaseSeconds=1)
    await api.advance(1_000)
    view = await api.read(submitted["jobId"])
    assert view["state"] == "ready"
    assert [(a["leaseId"], a["status"]) for a in view["attempts"]] == [
        (claimed["leaseId"], "expired")
    ]


async def test_pending_job_shows_not_before(api: Api) -> None:
    [submitted] = await api.submit(job(notBefore=rfc3339(NOW_MS + 90_000)))
    view = await api.read(submitted["jobId"])
    assert view["state"] == "pending"
    assert parse_time(view["notBefore"]) == NOW_MS + 90_000


async def not_found(api: Api, job_id: str, tenant: str = "tenant-a") -> dict[str, object]:
    status, body = await api.get(f"{SUBMIT}/{job_id}", tenant=tenant)
    return assert_envelope(status, body, "NOT_FOUND", 404)


async def test_another_tenants_job_is_404_like_an_unknown_one(api: Api) -> None:
    [theirs] = await api.submit(job(), tenant=OTHER)
    foreign = await not_found(api, theirs["jobId"])
    # an id of ours that was never issued: same number space, one past the last job
    unknown_id = theirs["jobId"][:-1] + ("1" if theirs["jobId"][-1] != "1" else "2")
    unknown = await not_found(api, unknown_id)
    assert set(foreign) == set(unknown)
    assert foreign["message"] == unknown["message"]
    assert (await api.read(theirs["jobId"], tenant=OTHER))["jobId"] == theirs["jobId"]


@pytest.mark.parametrize(
    "job_id",
    [
        "0190a0b0-0000-7000-8000-000000000999",
        "not-a-uuid",
        "123e4567-e89b-12d3-a456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        "0190A0B0-0000-7000-8000-00000000000Z",
        "1",
    ],
    ids=["unknown-v7", "garbage", "uuid-v1", "nil", "bad-hex", "number"],
)
async def test_unknown_or_malformed_id(api: Api, job_id: str) -> None:
    await api.submit(job())
    await not_found(api, job_id)


async def test_right_number_wrong_timestamp_is_404(api: Api) -> None:
    [submitted] = await api.submit(job())
    job_id = submitted["jobId"]
    shifted = ("1" if job_id[0] != "1" else "2") + job_id[1:]
    await not_found(api, shifted)


@pytest.mark.parametrize("scopes", ["orch:read", "orch:operate"])
async def test_read_or_operate_scope_reads(api: Api, scopes: str) -> None:
    [submitted] = await api.submit(job())
    status, body = await api.get(f"{SUBMIT}/{submitted['jobId']}", scopes=scopes)
    assert status == 200 and body["jobId"] == submitted["jobId"]


async def test_worker_scope_alone_is_refused(api: Api) -> None:
    [submitted] = await api.submit(job())
    status, body = await api.get(f"{SUBMIT}/{submitted['jobId']}", scopes="orch:worker")
    assert_envelope(status, body, "FORBIDDEN", 403)


async def test_read_needs_a_token(api: Api) -> None:
    [submitted] = await api.submit(job())
    status, body = await api.get(f"{SUBMIT}/{submitted['jobId']}", auth=False)
    assert_envelope(status, body, "UNAUTHENTICATED", 401)
