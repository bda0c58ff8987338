"""POST /worker/heartbeat: extend a held lease; anything else is ``lost``."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    HEARTBEAT,
    NOW_MS,
    OTHER,
    Api,
    assert_envelope,
    detail_fields,
    job,
    nested,
    parse_time,
)


async def beat(api: Api, *leases: dict[str, Any], tenant: str = "tenant-a") -> list[dict[str, Any]]:
    status, body = await api.post(
        HEARTBEAT, {"workerId": "w-1", "leases": list(leases)}, tenant=tenant
    )
    assert status == 200, body
    return body["leases"]


async def test_extended_with_new_lease_until(api: Api) -> None:
    await api.submit(job())
    [claimed] = await api.claim(leaseSeconds=10)
    api.clock.advance(4_000)
    [reply] = await beat(
        api,
        {
            "jobId": claimed["jobId"],
            "leaseId": claimed["leaseId"],
            "extendSeconds": 60,
            "progress": {"pct": 40, "message": "page 2"},
        },
    )
    assert reply["jobId"] == claimed["jobId"] and reply["status"] == "extended"
    assert parse_time(reply["leaseUntil"]) == NOW_MS + 4_000 + 60_000
    # the extension holds: past the first deadline the lease is still there
    await api.advance(10_000)
    assert (await api.read(claimed["jobId"]))["state"] == "leased"


async def test_default_extension(api: Api) -> None:
    await api.submit(job())
    [claimed] = await api.claim(leaseSeconds=5)
    [reply] = await beat(api, {"jobId": claimed["jobId"], "leaseId": claimed["leaseId"]})
    assert reply["status"] == "extended"
    assert parse_time(reply["leaseUntil"]) == NOW_MS + 30_000


async def test_replies_in_request_order(api: Api) -> None:
    await api.submit(job(), job())
    a, b = await api.claim(max_jobs=2)
    replies = await beat(
        api,
        {"jobId": b["jobId"], "leaseId": b["leaseId"]},
        {"jobId": a["jobId"], "leaseId": "0" * 16},
        {"jobId": a["jobId"], "leaseId": a["leaseId"]},
    )
    assert [(r["jobId"], r["status"]) for r in replies] == [
        (b["jobId"], "extended"),
        (a["jobId"], "lost"),
        (a["jobId"], "extended"),
    ]
    assert "leaseUntil" not in replies[1]


async def test_stale_lease_after_expiry_and_regrant_is_lost(api: Api) -> None:
    await api.submit(job())
    [first] = await api.claim(leaseSeconds=1)
    await api.advance(1_000)
    [second] = await api.claim(leaseSeconds=30)
    assert second["jobId"] == first["jobId"] and second["leaseId"] != first["leaseId"]
    [reply] = await beat(api, {"jobId": first["jobId"], "leaseId": first["leaseId"]})
    assert reply == {"jobId": first["jobId"], "status": "lost"}
    [reply] = await beat(api, {"jobId": second["jobId"], "leaseId": second["leaseId"]})
    assert reply["status"] == "extended"


async def test_expired_lease_is_lost(api: Api) -> None:
    await api.submit(job())
    [claimed] = await api.claim(leaseSeconds=1)
    await api.advance(1_000)
    [reply] = await beat(api, {"jobId": claimed["jobId"], "leaseId": claimed["leaseId"]})
    assert reply["status"] == "lost"


async def test_finished_job_is_lost(api: Api) -> None:
    await api.submit(job())
    [claimed] = await api.claim()
    await api.ack({"jobId": claimed["jobId"], "leaseId": claimed["leaseId"], "status": "succeeded"})
    [reply] = await beat(api, {"jobId": claimed["jobId"], "leaseId": claimed["leaseId"]})
    assert reply["status"] == "lost"


@pytest.mark.parametrize(
    "job_id",
    [
        "0190a0b0-0000-7000-8000-000000000999",
        "not-a-uuid",
        "123e4567-e89b-12d3-a456-426614174000",
        "0190a0b0-0000-7000-8000-00000000000g",
    ],
    ids=["unknown-v7", "garbage", "uuid-v1", "bad-hex"],
)
async def test_unknown_or_malformed_job_id_is_lost(api: Api, job_id: str) -> None:
    await api.submit(job())
    [claimed] = await api.claim()
    [reply] = await beat(api, {"jobId": job_id, "leaseId": claimed["leaseId"]})
    assert reply == {"jobId": job_id, "status": "lost"}


@pytest.mark.parametrize("lease_id", ["zz", "0" * 17, "x" * 16])
async def test_malformed_lease_id_is_lost(api: Api, lease_id: str) -> None:
    await api.submit(job())
    [claimed] = await api.claim()
    [reply] = await beat(api, {"jobId": claimed["jobId"], "leaseId": lease_id})
    assert reply["status"] == "lost"


async def test_another_tenants_job_is_lost(api: Api) -> None:
    await api.submit(job(), tenant=OTHER)
    [theirs] = await api.claim(tenant=OTHER, leaseSeconds=10)
    before = await api.snapshot()
    [reply] = await beat(
        api, {"jobId": theirs["jobId"], "leaseId": theirs["leaseId"], "extendSeconds": 3600}
    )
    assert reply["status"] == "lost"
    assert await api.snapshot() == before
    await api.advance(10_000)  # their lease was not extended
    assert (await api.read(theirs["jobId"], tenant=OTHER))["state"] == "ready"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"leases": [{"jobId": "j", "leaseId": "l"}]}, "workerId"),
        ({"workerId": "w"}, "leases"),
        ({"workerId": "w\x00", "leases": [{"jobId": "j", "leaseId": "l"}]}, "workerId"),
        (
            {
                "workerId": "w",
                "leases": [{"jobId": "j", "leaseId": "l", "progress": {"x": nested(300)}}],
            },
            "leases[0].progress",
        ),
        ({"workerId": "w", "leases": []}, "leases"),
        ({"workerId": "w", "leases": "all"}, "leases"),
        ({"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l"}] * 1001}, "leases"),
        ({"workerId": "w", "leases": ["lease"]}, "leases[0]"),
        ({"workerId": "w", "leases": [{"leaseId": "l"}]}, "leases[0].jobId"),
        ({"workerId": "w", "leases": [{"jobId": "j"}]}, "leases[0].leaseId"),
        ({"workerId": "w", "leases": [{"jobId": 5, "leaseId": "l"}]}, "leases[0].jobId"),
        (
            {"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l", "extendSeconds": 0}]},
            "leases[0].extendSeconds",
        ),
        (
            {"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l", "extendSeconds": 3601}]},
            "leases[0].extendSeconds",
        ),
        (
            {"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l", "extendSeconds": "30"}]},
            "leases[0].extendSeconds",
        ),
        (
            {"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l", "progress": 40}]},
            "leases[0].progress",
        ),
        (
            {"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l", "progress": {"pct": 101}}]},
            "leases[0].progress.pct",
        ),
        ({"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l", "ttl": 1}]}, "leases[0].ttl"),
        ({"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l"}], "x": 1}, "x"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_invalid_heartbeat(api: Api, body: dict[str, Any], field: str) -> None:
    await api.submit(job())
    [claimed] = await api.claim(leaseSeconds=10)
    before = await api.snapshot()
    status, reply = await api.post(HEARTBEAT, body)
    assert field in detail_fields(assert_envelope(status, reply, "VALIDATION_FAILED", 400))
    assert await api.snapshot() == before
    assert claimed["leaseId"]


async def test_heartbeat_needs_worker_scope(api: Api) -> None:
    status, reply = await api.post(
        HEARTBEAT,
        {"workerId": "w", "leases": [{"jobId": "j", "leaseId": "l"}]},
        scopes="orch:operate orch:read",
    )
    assert_envelope(status, reply, "FORBIDDEN", 403)
