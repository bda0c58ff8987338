"""POST /jobs: creation, job-level dedupe, all-or-nothing validation, size limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.api.app import ApiSettings

from .conftest import (
    NOW_MS,
    OTHER,
    SUBMIT,
    Api,
    MakeApi,
    assert_envelope,
    detail_fields,
    is_uuid7,
    job,
    nested,
    rfc3339,
)


async def test_created_in_request_order_with_states(api: Api) -> None:
    later = rfc3339(NOW_MS + 60_000)
    earlier = rfc3339(NOW_MS - 60_000)
    status, body = await api.post(
        SUBMIT,
        {
            "jobs": [
                job(payload={"i": 0}),
                job(payload={"i": 1}, notBefore=later),
                job(payload={"i": 2}, notBefore=earlier),
                job("other.type", payload={"i": 3}),
            ]
        },
    )
    assert status == 201, body
    jobs = body["jobs"]
    assert [j["state"] for j in jobs] == ["ready", "pending", "ready", "ready"]
    assert [j["deduplicated"] for j in jobs] == [False] * 4
    assert all(set(j) == {"jobId", "state", "deduplicated"} for j in jobs)
    ids = [j["jobId"] for j in jobs]
    assert all(is_uuid7(i) for i in ids) and len(set(ids)) == 4
    # request order: the payloads read back match the order of the request
    for i, job_id in enumerate(ids):
        assert (await api.read(job_id))["payload"] == {"i": i}
    # UUIDv7 ids sort by creation; within one batch they still follow request order
    assert ids == sorted(ids)


async def test_submitted_jobs_are_durable_when_answered(api: Api) -> None:
    jobs = await api.submit(job(), job())
    assert len(api.ledger._jobs) == 2
    assert {j["jobId"] for j in jobs} == {(await api.read(j["jobId"]))["jobId"] for j in jobs}


async def test_job_idempotency_key_dedupes(api: Api) -> None:
    first = await api.submit(job(idempotencyKey="once"))
    before = await api.snapshot()
    again = await api.submit(job(payload={"other": True}, idempotencyKey="once"))
    assert again[0]["jobId"] == first[0]["jobId"]
    assert again[0]["deduplicated"] is True and first[0]["deduplicated"] is False
    assert again[0]["state"] == "ready"
    assert await api.snapshot() == before


async def test_job_idempotency_key_dedupes_inside_one_batch(api: Api) -> None:
    jobs = await api.submit(job(idempotencyKey="k"), job(idempotencyKey="k"), job())
    assert jobs[0]["jobId"] == jobs[1]["jobId"] != jobs[2]["jobId"]
    assert [j["deduplicated"] for j in jobs] == [False, True, False]
    assert len(api.broker.engine.jobs) == 2


async def test_job_idempotency_key_dedupes_a_finished_job(api: Api) -> None:
    first = await api.submit(job(idempotencyKey="done-once"))
    [claimed] = await api.claim()
    await api.ack({"jobId": claimed["jobId"], "leaseId": claimed["leaseId"], "status": "succeeded"})
    again = await api.submit(job(idempotencyKey="done-once"))
    assert again == [{"jobId": first[0]["jobId"], "state": "succeeded", "deduplicated": True}]


async def test_job_idempotency_key_is_per_tenant(api: Api) -> None:
    mine = await api.submit(job(idempotencyKey="shared"))
    theirs = await api.submit(job(idempotencyKey="shared"), tenant=OTHER)
    assert theirs[0]["deduplicated"] is False and theirs[0]["jobId"] != mine[0]["jobId"]


async def test_ten_thousand_jobs_are_accepted(api: Api) -> None:
    jobs = await api.submit(*[job(payload=i) for i in range(10_000)])
    assert len(jobs) == 10_000 and len(api.ledger._jobs) == 10_000


# -- refusals -------------------------------------------------------------------------
async def refused(
    api: Api,
    body: Any = None,
    *,
    raw: bytes | None = None,
    status: int = 400,
    code: str = "VALIDATION_FAILED",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST a bad submission; assert the envelope and that nothing changed."""
    await api.submit(job(payload="already there"))
    before = await api.snapshot()
    got, reply = await api.post(SUBMIT, body, raw=raw, headers=headers)
    error = assert_envelope(got, reply, code, status)
    assert await api.snapshot() == before
    return error


async def test_batch_is_all_or_nothing_with_failing_indexes(api: Api) -> None:
    error = await refused(
        api,
        {
            "jobs": [
                job(),
                job("Bad Type"),
                job(),
                job(priority=42),
                job(),
            ]
        },
    )
    fields = detail_fields(error)
    assert "jobs[1].jobType" in fields and "jobs[3].priority" in fields
    assert not any(f.startswith(("jobs[0]", "jobs[2]", "jobs[4]")) for f in fields)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"jobs": [}',
        b"not json",
        b'{"jobs": [{"jobType": "scan", "payload": NaN}]}',
        b"\xff\xfe",
        b'{"jobs": []} trailing',
    ],
    ids=["open-brace", "broken-list", "text", "nan", "not-utf8", "trailing"],
)
async def test_malformed_json(api: Api, raw: bytes) -> None:
    await refused(api, raw=raw, headers={"Content-Type": "application/json"})


async def test_empty_body(api: Api) -> None:
    await refused(api, raw=b"")


@pytest.mark.parametrize(
    "body",
    [[], [job()], "jobs", 5, None, True],
    ids=["list", "list-of-jobs", "string", "number", "null", "bool"],
)
async def test_body_not_an_object(api: Api, body: Any) -> None:
    await refused(api, raw=json.dumps(body).encode())


@pytest.mark.parametrize(
    "jobs", [[], {}, "x", None, 3], ids=["empty", "object", "string", "null", "number"]
)
async def test_jobs_empty_or_not_a_list(api: Api, jobs: Any) -> None:
    error = await refused(api, {"jobs": jobs})
    assert detail_fields(error) == ["jobs"]


async def test_jobs_missing(api: Api) -> None:
    assert "jobs" in detail_fields(await refused(api, {}))


async def test_more_than_ten_thousand_jobs(api: Api) -> None:
    error = await refused(api, {"jobs": [job(payload=i) for i in range(10_001)]})
    assert detail_fields(error) == ["jobs"]


async def test_job_not_an_object(api: Api) -> None:
    assert detail_fields(await refused(api, {"jobs": [job(), "scan"]})) == ["jobs[1]"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("jobType", "UPPER"),
        ("jobType", ""),
        ("jobType", "has space"),
        ("jobType", "a" * 129),
        ("jobType", 7),
        ("jobType", None),
        ("jobType", ["scan"]),
        ("priority", True),
        ("priority", False),
        ("priority", "5"),
        ("priority", 10),
        ("priority", -1),
        ("priority", 5.5),
        ("priority", None),
        ("maxAttempts", 0),
        ("maxAttempts", 101),
        ("maxAttempts", "3"),
        ("maxAttempts", True),
        ("leaseSeconds", 0),
        ("leaseSeconds", 3601),
        ("leaseSeconds", -5),
        ("leaseSeconds", "30"),
        ("notBefore", "tomorrow"),
        ("notBefore", "2027-01-15"),
        ("notBefore", "2027-01-15T10:00:00"),
        ("notBefore", "2027-13-45T10:00:00Z"),
        ("notBefore", 1_800_000_000),
        ("notBefore", True),
        ("idempotencyKey", 5),
        ("idempotencyKey", ""),
        ("idempotencyKey", "k" * 257),
        ("project", ["p"]),
        ("correlationId", {"a": 1}),
        ("sourceHost", 1),
        ("runId", 2),
        ("key", False),
        ("dependsOn", "parse"),
        ("idempotencyKey", "k\x00"),
        ("project", "p\x00q"),
        ("correlationId", "\x00"),
        ("sourceHost", "h\x00"),
        ("runId", "r\x00"),
        ("key", "\x00k"),
    ],
)
async def test_bad_job_field(api: Api, field: str, value: Any) -> None:
    error = await refused(api, {"jobs": [job(), job(**{field: value})]})
    assert f"jobs[1].{field}" in detail_fields(error)


async def test_missing_job_type(api: Api) -> None:
    error = await refused(api, {"jobs": [{"payload": {}}]})
    assert detail_fields(error) == ["jobs[0].jobType"]


async def test_missing_payload(api: Api) -> None:
    error = await refused(api, {"jobs": [{"jobType": "scan"}]})
    assert detail_fields(error) == ["jobs[0].payload"]


async def test_unknown_field(api: Api) -> None:
    error = await refused(api, {"jobs": [job(colour="blue")]})
    assert detail_fields(error) == ["jobs[0].colour"]


async def test_unknown_top_level_field(api: Api) -> None:
    assert "dryRun" in detail_fields(await refused(api, {"jobs": [job()], "dryRun": True}))


async def test_every_problem_reported_at_once(api: Api) -> None:
    error = await refused(
        api, {"jobs": [job("X", priority="high", maxAttempts=0, leaseSeconds=0, notBefore="soon")]}
    )
    assert set(detail_fields(error)) == {
        "jobs[0].jobType",
        "jobs[0].priority",
        "jobs[0].maxAttempts",
        "jobs[0].leaseSeconds",
        "jobs[0].notBefore",
    }


# -- size limits ------------------------------------------------------------------------
async def test_payload_over_the_default_limit(api: Api) -> None:
    big = "x" * (1024 * 1024)  # encoded with its quotes: 1 MiB + 2 bytes
    await refused(api, {"jobs": [job(), job(payload=big)]}, status=413, code="PAYLOAD_TOO_LARGE")


async def test_payload_at_the_limit_is_accepted(make_api: MakeApi) -> None:
    api = await make_api(ApiSettings(max_payload_bytes=100))
    jobs = await api.submit(job(payload="y" * 98))  # 100 bytes encoded
    assert jobs[0]["state"] == "ready"


async def test_payload_over_a_configured_limit(make_api: MakeApi) -> None:
    api = await make_api(ApiSettings(max_payload_bytes=100))
    await refused(api, {"jobs": [job(payload="y" * 99)]}, status=413, code="PAYLOAD_TOO_LARGE")


async def test_body_over_the_limit_with_content_length(make_api: MakeApi) -> None:
    api = await make_api(ApiSettings(max_body_bytes=2_000))
    body = json.dumps({"jobs": [job(payload="z" * 5_000)]}).encode()
    await refused(
        api,
        raw=body,
        status=413,
        code="PAYLOAD_TOO_LARGE",
        headers={"Content-Type": "application/json"},
    )


async def test_body_over_the_limit_chunked(make_api: MakeApi) -> None:
    api = await make_api(ApiSettings(max_body_bytes=2_000))
    await api.submit(job(payload="already there"))
    before = await api.snapshot()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"jobs": [{"jobType": "scan", "payload": "'
        for _ in range(50):
            yield b"z" * 200
        yield b'"}]}'

    async with api.client.post(SUBMIT, data=chunks(), headers=api.headers()) as resp:
        body = await resp.json()
        assert_envelope(resp.status, body, "PAYLOAD_TOO_LARGE", 413)
    assert await api.snapshot() == before


async def test_body_at_the_limit_is_read(make_api: MakeApi) -> None:
    body = json.dumps({"jobs": [job(payload="z" * 100)]}).encode()
    api = await make_api(ApiSettings(max_body_bytes=len(body)))
    status, reply = await api.post(SUBMIT, raw=body, headers={"Content-Type": "application/json"})
    assert status == 201, reply


@pytest.mark.parametrize(
    "stamp",
    [
        "2027-W03-5T10:00:00Z",  # ISO 8601 week date
        "2027-01-15T100000.000Z",  # ISO 8601 basic time
        "2027-01-15T10:00:00+0100",  # offset without a colon
        "2027-01-15T10:00:00.5+01",  # hour-only offset
        "2027-01-15T10:00:00,5Z",  # comma as decimal sign
        "2027-01-15T10:00:00+01:00:30",  # offset with seconds
    ],
    ids=[
        "week-date",
        "basic-time",
        "offset-no-colon",
        "offset-hours",
        "comma-fraction",
        "offset-seconds",
    ],
)
async def test_not_before_that_is_not_rfc3339(api: Api, stamp: str) -> None:
    # API.md: timestamps are RFC 3339; these ISO 8601 forms are not (RFC 3339 section 5.6)
    error = await refused(api, {"jobs": [job(notBefore=stamp)]})
    assert detail_fields(error) == ["jobs[0].notBefore"]


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-23:59", "9999-12-31T23:00:00-01:00"])
async def test_not_before_past_year_9999(api: Api, stamp: str) -> None:
    # an instant after 9999-12-31T23:59:59.999Z has no RFC 3339 form: refuse it, or at
    # least keep the job readable; never answer 500 about a job the server accepted
    status, body = await api.post(SUBMIT, {"jobs": [job(notBefore=stamp)]})
    if status == 201:
        status, view = await api.get(f"{SUBMIT}/{body['jobs'][0]['jobId']}")
        assert status == 200, view
    else:
        assert_envelope(status, body, "VALIDATION_FAILED", 400)


async def test_not_before_at_the_end_of_year_9999_is_readable(api: Api) -> None:
    [submitted] = await api.submit(job(notBefore="9999-12-31T23:59:59.999Z"))
    view = await api.read(submitted["jobId"])
    assert view["notBefore"] == "9999-12-31T23:59:59.999Z"


async def test_not_before_before_1970(api: Api) -> None:
    error = await refused(api, {"jobs": [job(notBefore="1969-12-31T23:59:59Z")]})
    assert detail_fields(error) == ["jobs[0].notBefore"]


async def test_payload_nested_too_deeply_to_store_is_refused(api: Api) -> None:
    # orjson reads 1,024 levels but writes 254: a deeper payload could not be stored
    before = await api.snapshot()
    raw = json.dumps({"jobs": [job(), job(payload=nested(300))]}).encode()
    status, reply = await api.post(SUBMIT, raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400, reply
    assert detail_fields(reply["error"]) == ["jobs[1].payload"]
    assert await api.snapshot() == before


async def test_payload_at_the_deepest_storable_nesting_is_kept(api: Api) -> None:
    # 254 levels: storable alone, though not inside one more list
    (created,) = await api.submit(job(payload=nested(254)))
    assert (await api.read(created["jobId"]))["payload"] == nested(254)
