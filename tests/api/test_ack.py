"""POST /worker/ack: outcomes, fencing, retries, dead-lettering, ack-and-claim."""

from __future__ import annotations

from typing import Any

import pytest

from broker import states

from .conftest import (
    ACK,
    NOW_MS,
    OTHER,
    Api,
    assert_envelope,
    detail_fields,
    job,
    nested,
    parse_time,
)

GOOD_DIGEST = "sha256:" + "ab" * 32


def result(claimed: dict[str, Any], status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"jobId": claimed["jobId"], "leaseId": claimed["leaseId"], "status": status, **extra}


async def leased(api: Api, **fields: Any) -> dict[str, Any]:
    await api.submit(job(**fields))
    [claimed] = await api.claim(max_jobs=1)
    return claimed


async def test_succeeded(api: Api) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(result(claimed, output={"rows": 3}))
    assert reply == {"jobId": claimed["jobId"], "outcome": "accepted", "state": "succeeded"}
    assert (await api.read(claimed["jobId"]))["state"] == "succeeded"
    assert len(api.broker.engine.jobs) == 0


async def test_succeeded_is_durable_when_answered(api: Api) -> None:
    claimed = await leased(api)
    await api.ack(result(claimed))
    [jid] = api.ledger._jobs
    stored = await api.ledger.read_job(jid)
    assert stored is not None and stored.job.state == states.SUCCEEDED  # written before the answer


async def test_same_ack_twice_is_accepted_again(api: Api) -> None:
    claimed = await leased(api)
    first = await api.ack(result(claimed))
    before = await api.snapshot()
    again = await api.ack(result(claimed))
    assert again == first
    assert await api.snapshot() == before


async def test_same_failed_ack_twice_is_accepted_again(api: Api) -> None:
    claimed = await leased(api)
    first = await api.ack(result(claimed, "failed"))
    before = await api.snapshot()
    assert await api.ack(result(claimed, "failed")) == first
    assert await api.snapshot() == before


async def test_same_lease_different_status_conflicts(api: Api) -> None:
    claimed = await leased(api)
    await api.ack(result(claimed))
    before = await api.snapshot()
    [reply] = await api.ack(result(claimed, "failed"))
    assert reply == {"jobId": claimed["jobId"], "outcome": "conflict"}
    assert await api.snapshot() == before
    assert (await api.read(claimed["jobId"]))["state"] == "succeeded"


async def test_stale_lease_conflicts_and_the_new_lease_holds(api: Api) -> None:
    first = await leased(api, leaseSeconds=1)
    await api.advance(1_000)
    [second] = await api.claim()
    assert second["jobId"] == first["jobId"] and second["attempt"] == 2
    before = await api.snapshot()
    [reply] = await api.ack(result(first))
    assert reply == {"jobId": first["jobId"], "outcome": "conflict"}
    assert await api.snapshot() == before
    [reply] = await api.ack(result(second))
    assert reply["outcome"] == "accepted" and reply["state"] == "succeeded"


async def test_stale_lease_after_expiry_before_regrant_conflicts(api: Api) -> None:
    first = await leased(api, leaseSeconds=1)
    await api.advance(1_000)
    before = await api.snapshot()
    [reply] = await api.ack(result(first))
    assert reply["outcome"] == "conflict"
    assert await api.snapshot() == before
    assert (await api.read(first["jobId"]))["state"] == "ready"


@pytest.mark.parametrize(
    "job_id",
    [
        "0190a0b0-0000-7000-8000-000000000999",
        "not-a-uuid",
        "123e4567-e89b-12d3-a456-426614174000",
    ],
    ids=["unknown", "garbage", "uuid-v1"],
)
async def test_unknown_or_malformed_job_id_is_not_found(api: Api, job_id: str) -> None:
    claimed = await leased(api)
    before = await api.snapshot()
    [reply] = await api.ack({"jobId": job_id, "leaseId": claimed["leaseId"], "status": "succeeded"})
    assert reply == {"jobId": job_id, "outcome": "not_found"}
    assert await api.snapshot() == before


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled", "timed_out"])
async def test_another_tenants_job_is_not_found(api: Api, status: str) -> None:
    await api.submit(job(), tenant=OTHER)
    [theirs] = await api.claim(tenant=OTHER)
    before = await api.snapshot()
    [reply] = await api.ack(result(theirs, status))
    assert reply == {"jobId": theirs["jobId"], "outcome": "not_found"}
    assert await api.snapshot() == before
    assert (await api.read(theirs["jobId"], tenant=OTHER))["state"] == "leased"


async def test_another_tenants_finished_job_is_not_found(api: Api) -> None:
    await api.submit(job(), tenant=OTHER)
    [theirs] = await api.claim(tenant=OTHER)
    await api.ack(result(theirs), tenant=OTHER)
    [reply] = await api.ack(result(theirs))
    assert reply == {"jobId": theirs["jobId"], "outcome": "not_found"}


async def test_failed_retryable_goes_pending(api: Api) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(
        result(
            claimed,
            "failed",
            error={"class": "http_503", "message": "upstream down", "retryable": True},
        )
    )
    assert reply == {"jobId": claimed["jobId"], "outcome": "accepted", "state": "pending"}
    view = await api.read(claimed["jobId"])
    assert view["state"] == "pending" and view["nextAttemptAt"] is not None


async def test_failed_without_error_object_is_retryable(api: Api) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(result(claimed, "failed"))
    assert reply["state"] == "pending"


async def test_failed_not_retryable_is_dead(api: Api) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(
        result(claimed, "failed", error={"class": "bad_input", "retryable": False})
    )
    assert reply == {"jobId": claimed["jobId"], "outcome": "accepted", "state": "dead"}
    assert (await api.read(claimed["jobId"]))["state"] == "dead"


async def test_attempts_exhausted_is_dead(api: Api) -> None:
    claimed = await leased(api, maxAttempts=2)
    [reply] = await api.ack(result(claimed, "failed"))
    assert reply["state"] == "pending"
    await api.advance(3_600_000)
    [second] = await api.claim()
    assert second["attempt"] == 2 and second["maxAttempts"] == 2
    [reply] = await api.ack(result(second, "failed", error={"retryable": True}))
    assert reply == {"jobId": claimed["jobId"], "outcome": "accepted", "state": "dead"}


async def test_lease_expiry_on_last_attempt_is_dead(api: Api) -> None:
    claimed = await leased(api, maxAttempts=1, leaseSeconds=1)
    await api.advance(1_000)
    assert (await api.read(claimed["jobId"]))["state"] == "dead"
    assert await api.claim() == []


async def test_timed_out_goes_pending(api: Api) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(result(claimed, "timed_out"))
    assert reply == {"jobId": claimed["jobId"], "outcome": "accepted", "state": "pending"}


async def test_canceled(api: Api) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(result(claimed, "canceled"))
    assert reply == {"jobId": claimed["jobId"], "outcome": "accepted", "state": "canceled"}
    assert (await api.read(claimed["jobId"]))["state"] == "canceled"


@pytest.mark.parametrize("after", [20, 90.5, 3_600])
async def test_retry_after_seconds_is_respected(api: Api, after: float) -> None:
    claimed = await leased(api)
    [reply] = await api.ack(
        result(
            claimed,
            "failed",
            error={"class": "http_429", "retryable": True, "retryAfterSeconds": after},
        )
    )
    assert reply["state"] == "pending"
    view = await api.read(claimed["jobId"])
    assert parse_time(view["nextAttemptAt"]) >= NOW_MS + after * 1000
    await api.advance(int(after * 1000) - 1)
    assert await api.claim() == []
    await api.advance(10 * 60_000 + 1)  # past the largest backoff the first attempt can draw
    [again] = await api.claim()
    assert again["attempt"] == 2


async def test_mixed_batch_answers_in_order(api: Api) -> None:
    await api.submit(job(), job(), job())
    a, b, c = await api.claim(max_jobs=3)
    replies = await api.ack(
        result(a),
        result(b, "failed", error={"retryable": False}),
        {"jobId": c["jobId"], "leaseId": "0" * 16, "status": "succeeded"},
        result(c, "canceled"),
    )
    assert [(r["jobId"], r["outcome"], r.get("state")) for r in replies] == [
        (a["jobId"], "accepted", "succeeded"),
        (b["jobId"], "accepted", "dead"),
        (c["jobId"], "conflict", None),
        (c["jobId"], "accepted", "canceled"),
    ]


async def test_output_and_artifacts_are_kept(api: Api) -> None:
    claimed = await leased(api)
    artifacts = [{"uri": "cas://out/1", "digest": GOOD_DIGEST, "mime": "application/json"}]
    await api.ack(result(claimed, output={"rows": 3}, artifacts=artifacts))
    [attempt] = (await api.read(claimed["jobId"]))["attempts"]
    assert attempt["output"] == {"rows": 3} and attempt["artifacts"] == artifacts


# -- ack with claim ------------------------------------------------------------------------
async def test_ack_with_claim_returns_jobs_as_a_claim_would(api: Api) -> None:
    await api.submit(job(payload="first"))
    [first] = await api.claim()
    await api.submit(
        job(payload="x", priority=9, project="p", correlationId="c"),
        job(payload="y"),
        job(payload="z", priority=0),
    )
    status, body = await api.post(
        ACK,
        {
            "workerId": "w-1",
            "results": [result(first)],
            "claim": {"jobTypes": ["scan"], "maxJobs": 2, "leaseSeconds": 20},
        },
    )
    assert status == 200, body
    assert body["results"] == [
        {"jobId": first["jobId"], "outcome": "accepted", "state": "succeeded"}
    ]
    jobs = body["jobs"]
    assert [j["payload"] for j in jobs] == ["x", "y"]
    assert set(jobs[0]) == set(first)
    assert jobs[0]["project"] == "p" and jobs[0]["correlationId"] == "c"
    assert all(parse_time(j["leaseUntil"]) == NOW_MS + 20_000 for j in jobs)
    assert all(j["attempt"] == 1 for j in jobs)
    # the lease is held by the acking worker
    view = await api.read(jobs[0]["jobId"])
    assert view["state"] == "leased" and view["attempts"][0]["workerId"] == "w-1"


async def test_ack_with_only_a_claim(api: Api) -> None:
    await api.submit(job())
    status, body = await api.post(
        ACK, {"workerId": "w-1", "results": [], "claim": {"jobTypes": ["scan"]}}
    )
    assert status == 200, body
    assert body["results"] == [] and len(body["jobs"]) == 1


async def test_ack_with_claim_and_nothing_ready(api: Api) -> None:
    claimed = await leased(api)
    status, body = await api.post(
        ACK,
        {
            "workerId": "w-1",
            "results": [result(claimed)],
            "claim": {"jobTypes": ["scan"], "maxJobs": 5},
        },
    )
    assert status == 200 and body["jobs"] == []


# -- validation ----------------------------------------------------------------------------
async def refused_ack(api: Api, body: Any) -> list[str]:
    before = await api.snapshot()
    status, reply = await api.post(ACK, body)
    fields = detail_fields(assert_envelope(status, reply, "VALIDATION_FAILED", 400))
    assert await api.snapshot() == before
    return fields


@pytest.mark.parametrize(
    "status",
    [
        "done",
        "SUCCEEDED",
        "expired",
        "",
        None,
        1,
        True,
        {},
        ["succeeded"],
    ],
    ids=["done", "upper", "expired", "empty", "null", "number", "bool", "object", "list"],
)
async def test_invalid_status_changes_nothing(api: Api, status: Any) -> None:
    claimed = await leased(api)
    fields = await refused_ack(
        api, {"workerId": "w-1", "results": [result(claimed), result(claimed, status)]}
    )
    assert fields == ["results[1].status"]
    assert (await api.read(claimed["jobId"]))["state"] == "leased"


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "AB" * 32,
        "sha256:" + "ab" * 31,
        "md5:" + "ab" * 16,
        "ab" * 32,
        "",
        None,
        5,
    ],
    ids=["upper", "short", "md5", "bare", "empty", "null", "number"],
)
async def test_artifact_with_bad_digest(api: Api, digest: Any) -> None:
    claimed = await leased(api)
    artifact = {"uri": "cas://a", "digest": digest}
    fields = await refused_ack(
        api, {"workerId": "w-1", "results": [result(claimed, artifacts=[artifact])]}
    )
    assert fields == ["results[0].artifacts[0].digest"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"error": {"retryable": "yes"}}, "results[0].error.retryable"),
        ({"error": {"retryAfterSeconds": -1}}, "results[0].error.retryAfterSeconds"),
        ({"error": {"retryAfterSeconds": 86_401}}, "results[0].error.retryAfterSeconds"),
        ({"error": {"retryAfterSeconds": True}}, "results[0].error.retryAfterSeconds"),
        ({"error": {"retryAfterSeconds": "20"}}, "results[0].error.retryAfterSeconds"),
        ({"error": {"class": 429}}, "results[0].error.class"),
        ({"error": {"message": 5}}, "results[0].error.message"),
        ({"error": {"code": "x"}}, "results[0].error.code"),
        ({"error": "boom"}, "results[0].error"),
        ({"artifacts": "cas://a"}, "results[0].artifacts"),
        ({"artifacts": [{"digest": GOOD_DIGEST}]}, "results[0].artifacts[0].uri"),
        (
            {"artifacts": [{"uri": "cas://a", "digest": GOOD_DIGEST, "size": 1}]},
            "results[0].artifacts[0].size",
        ),
        ({"extra": 1}, "results[0].extra"),
        ({"output": nested(300)}, "results[0].output"),
        (
            {"artifacts": [{"uri": "cas://\x00", "digest": GOOD_DIGEST}]},
            "results[0].artifacts[0].uri",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_invalid_result(api: Api, change: dict[str, Any], field: str) -> None:
    claimed = await leased(api)
    fields = await refused_ack(
        api, {"workerId": "w-1", "results": [result(claimed, "failed", **change)]}
    )
    assert field in fields


@pytest.mark.parametrize(
    "body,field",
    [
        ({"results": []}, "workerId"),
        ({"workerId": "w-1"}, "results"),
        ({"workerId": "w\x00", "results": []}, "workerId"),
        ({"workerId": "w-1", "results": {}}, "results"),
        ({"workerId": "w-1", "results": []}, "results"),
        ({"workerId": "w-1", "results": ["done"]}, "results[0]"),
        ({"workerId": "w-1", "results": [], "claim": {"jobTypes": []}}, "claim.jobTypes"),
        (
            {"workerId": "w-1", "results": [], "claim": {"jobTypes": ["scan"], "maxJobs": 0}},
            "claim.maxJobs",
        ),
        (
            {"workerId": "w-1", "results": [], "claim": {"jobTypes": ["scan"], "workerId": "w"}},
            "claim.workerId",
        ),
        ({"workerId": "w-1", "results": [], "claim": "next"}, "claim"),
        ({"workerId": "w-1", "results": [], "more": True}, "more"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_invalid_ack_body(api: Api, body: dict[str, Any], field: str) -> None:
    await leased(api)
    assert field in await refused_ack(api, body)


@pytest.mark.parametrize("missing", ["jobId", "leaseId", "status"])
async def test_result_missing_a_required_field(api: Api, missing: str) -> None:
    claimed = await leased(api)
    item = result(claimed)
    del item[missing]
    assert f"results[0].{missing}" in await refused_ack(api, {"workerId": "w-1", "results": [item]})


async def test_too_many_results(api: Api) -> None:
    claimed = await leased(api)
    assert "results" in await refused_ack(
        api, {"workerId": "w-1", "results": [result(claimed)] * 1001}
    )


async def test_ack_needs_worker_scope(api: Api) -> None:
    claimed = await leased(api)
    before = await api.snapshot()
    status, body = await api.post(
        ACK, {"workerId": "w-1", "results": [result(claimed)]}, scopes="orch:operate orch:read"
    )
    assert_envelope(status, body, "FORBIDDEN", 403)
    assert await api.snapshot() == before


async def test_output_at_the_deepest_storable_nesting_reads_back(api: Api) -> None:
    # stored inside {"output": ..., "artifacts": []}: 253 levels of its own at most,
    # and the job view, which holds it deeper still, must be readable all the same
    claimed = await leased(api)
    [reply] = await api.ack(result(claimed, "succeeded", output=nested(253)))
    assert reply["outcome"] == "accepted"
    view = await api.read(claimed["jobId"])
    assert view["attempts"][-1]["output"] == nested(253)
    fields = await refused_ack(
        api,
        {"workerId": "w-1", "results": [result(await leased(api), "failed", output=nested(254))]},
    )
    assert fields == ["results[0].output"]
