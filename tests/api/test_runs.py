"""DAG runs over HTTP: creation, readiness, failure, cancel, replay and the views."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    BASE,
    OTHER,
    SUBMIT,
    Api,
    MakeApi,
    assert_envelope,
    detail_fields,
    is_uuid7,
    job,
)

RUNS = f"{BASE}/runs"
REASON = {"X-Stella-Operator-Reason": "upstream fixed, INC-42"}


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


def step(key: str, *deps: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("dependsOn", list(deps))
    return job("step", {"key": key}, key=key, **fields)


PIPELINE = [step("export", "normalise"), step("fetch"), step("parse", "fetch"),
            step("normalise", "parse")]  # fmt: skip


async def create(api: Api, jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    status, body = await api.post(RUNS, {"jobs": jobs, **extra})
    assert status == 201, body
    return body


async def claim(api: Api, n: int = 100, tenant: str = "tenant-a") -> list[dict[str, Any]]:
    return await api.claim(["step"], n, tenant=tenant, leaseSeconds=60)


def done(job: dict[str, Any], status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"jobId": job["jobId"], "leaseId": job["leaseId"], "status": status, **extra}


async def run_view(api: Api, run_id: str, part: str = "", **kw: Any) -> dict[str, Any]:
    status, body = await api.get(f"{RUNS}/{run_id}{part}", **kw)
    assert status == 200, body
    return body


async def test_a_pipeline_runs_in_dependency_order(api: Api) -> None:
    created = await create(api, PIPELINE)
    run_id = created["runId"]
    assert is_uuid7(run_id) and created["deduplicated"] is False
    by_key = {j["key"]: j for j in created["jobs"]}
    assert [j["key"] for j in created["jobs"]] == ["export", "fetch", "parse", "normalise"]
    assert by_key["fetch"]["state"] == "ready" and by_key["export"]["state"] == "pending"
    order = []
    while claimed := await claim(api):
        assert len(claimed) == 1 and claimed[0]["runId"] == run_id
        order.append(claimed[0]["payload"]["key"])
        await api.ack(done(claimed[0]))
    assert order == ["fetch", "parse", "normalise", "export"]
    summary = await run_view(api, run_id)
    assert summary["status"] == "succeeded" and summary["jobCount"] == 4
    assert summary["counts"]["succeeded"] == 4 and summary["finishedAt"] is not None
    dag = await run_view(api, run_id, "/dag")
    ids = {n["key"]: n["jobId"] for n in dag["nodes"]}
    assert {(e["from"], e["to"]) for e in dag["edges"]} == {
        (ids["fetch"], ids["parse"]),
        (ids["parse"], ids["normalise"]),
        (ids["normalise"], ids["export"]),
    }
    timeline = await run_view(api, run_id, "/timeline")
    assert [j["key"] for j in timeline["jobs"]] == ["fetch", "parse", "normalise", "export"]
    assert all(j["attempts"][0]["workerId"] == "w-1" for j in timeline["jobs"])
    assert timeline["nextPageToken"] is None


async def test_timeline_pages(api: Api) -> None:
    created = await create(api, [step(f"k{i}") for i in range(5)])
    path = f"{RUNS}/{created['runId']}/timeline"
    status, first = await api.get(f"{path}?page_size=2")
    assert status == 200 and len(first["jobs"]) == 2
    status, second = await api.get(f"{path}?page_size=2&page_token={first['nextPageToken']}")
    keys = [j["key"] for j in first["jobs"] + second["jobs"]]
    assert keys == ["k0", "k1", "k2", "k3"]


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ([step("a", "b"), step("b", "a")], "jobs[0].dependsOn"),
        ([step("a", "nope")], "jobs[0].dependsOn"),
        ([step("a"), step("a")], "jobs[1].key"),
        ([job("step")], "jobs[0].key"),
        ([step("a", "a")], "jobs[0].dependsOn"),
        ([step("a", runId="elsewhere")], "jobs[0].runId"),
        ([step("a", dependsOn="b")], "jobs[0].dependsOn"),
    ],
    ids=["cycle", "dangling", "duplicate", "no-key", "self", "other-run", "not-a-list"],
)
async def test_bad_runs_are_refused_whole(api: Api, jobs: list[Any], field: str) -> None:
    before = await api.snapshot()
    status, body = await api.post(RUNS, {"jobs": [step("fine"), *jobs]})
    error = assert_envelope(status, body, "VALIDATION_FAILED", 400)
    shifted = field.replace(f"jobs[{field[5]}]", f"jobs[{int(field[5]) + 1}]")
    assert shifted in detail_fields(error)
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    "body",
    [{"jobs": []}, {"jobs": [step("a")], "extra": 1}, {"jobs": [step("a")], "runToken": 5}, []],
)
async def test_malformed_run_bodies(api: Api, body: Any) -> None:
    status, reply = await api.post(RUNS, body)
    assert_envelope(status, reply, "VALIDATION_FAILED", 400)


async def test_run_token_finds_the_first_run(api: Api) -> None:
    first = await create(api, PIPELINE, runToken="nightly-2026-11-27")
    status, again = await api.post(RUNS, {"jobs": PIPELINE, "runToken": "nightly-2026-11-27"})
    assert status == 200 and again["deduplicated"] is True
    assert again["runId"] == first["runId"]
    assert sorted(j["jobId"] for j in again["jobs"]) == sorted(j["jobId"] for j in first["jobs"])
    status, other = await api.post(
        RUNS, {"jobs": PIPELINE, "runToken": "nightly-2026-11-27"}, tenant=OTHER
    )
    assert status == 201 and other["runId"] != first["runId"]


async def test_another_tenants_run_is_not_found(api: Api) -> None:
    run_id = (await create(api, PIPELINE))["runId"]
    for part in ("", "/dag", "/timeline"):
        status, body = await api.get(f"{RUNS}/{run_id}{part}", tenant=OTHER)
        assert_envelope(status, body, "NOT_FOUND", 404)
    status, body = await api.post(f"{RUNS}/{run_id}/cancel", tenant=OTHER)
    assert_envelope(status, body, "NOT_FOUND", 404)
    before = await api.snapshot()
    status, body = await api.post(
        SUBMIT, {"jobs": [step("sneak", "fetch", runId=run_id)]}, tenant=OTHER
    )
    assert_envelope(status, body, "NOT_FOUND", 404)
    assert await api.snapshot() == before


async def test_jobs_join_a_run_later_even_after_it_finished(api: Api) -> None:
    run_id = (await create(api, [step("fetch")]))["runId"]
    [fetch] = await claim(api)
    await api.ack(done(fetch))
    assert (await run_view(api, run_id))["status"] == "succeeded"
    [late] = await api.submit(step("parse", "fetch", runId=run_id))
    assert late["state"] == "ready"  # its parent succeeded before it joined
    assert (await run_view(api, run_id))["status"] == "running"
    [more] = await api.submit(step("export", "parse", runId=run_id))
    assert more["state"] == "pending"
    [parse] = await claim(api)
    assert parse["jobId"] == late["jobId"]
    await api.ack(done(parse))
    [export] = await claim(api)
    assert export["jobId"] == more["jobId"]


async def test_a_new_run_id_on_submit_starts_a_run(api: Api) -> None:
    jobs = await api.submit(step("a", runId="adhoc-1"), step("b", "a", runId="adhoc-1"))
    assert [j["state"] for j in jobs] == ["ready", "pending"]
    assert (await run_view(api, "adhoc-1"))["jobCount"] == 2


async def test_failure_blocks_descendants_and_fails_the_run(api: Api) -> None:
    created = await create(api, [step("a"), step("b", "a"), step("c", "b"), step("side")])
    run_id = created["runId"]
    claimed = {j["payload"]["key"]: j for j in await claim(api)}
    await api.ack(done(claimed["side"]))
    error = {"class": "parse_error", "message": "bad feed", "retryable": False}
    [result] = await api.ack(done(claimed["a"], "failed", error=error))
    assert result["state"] == "dead"
    summary = await run_view(api, run_id)
    assert summary["status"] == "failed"
    assert summary["counts"] == {**dict.fromkeys(summary["counts"], 0),
                                 "succeeded": 1, "dead": 1, "blocked": 2}  # fmt: skip
    ids = {j["key"]: j["jobId"] for j in created["jobs"]}
    assert (await api.read(ids["c"]))["state"] == "blocked"
    assert await claim(api) == []


async def test_cancel_run_cancels_leased_jobs(api: Api) -> None:
    created = await create(api, [step("a"), step("b", "a"), step("c")])
    leased = await claim(api)
    status, body = await api.post(f"{RUNS}/{created['runId']}/cancel")
    assert status == 200 and body["canceled"] == 3
    results = await api.ack(*(done(j) for j in leased))
    assert [r["outcome"] for r in results] == ["conflict", "conflict"]
    summary = await run_view(api, created["runId"])
    assert summary["status"] == "canceled" and summary["counts"]["canceled"] == 3
    status, body = await api.post(f"{RUNS}/{created['runId']}/cancel")
    assert status == 200 and body["canceled"] == 0


async def test_partial_replay_needs_a_reason_and_keeps_succeeded_jobs(api: Api) -> None:
    created = await create(api, [step("a"), step("b", "a"), step("c", "b"), step("d", "a")])
    run_id = created["runId"]
    ids = {j["key"]: j["jobId"] for j in created["jobs"]}
    [a] = await claim(api)
    await api.ack(done(a))
    second = {j["payload"]["key"]: j for j in await claim(api)}
    await api.ack(done(second["d"]))
    await api.ack(done(second["b"], "failed", error={"class": "x", "retryable": False}))
    replay = {"jobIds": [ids["c"]]}
    before = await api.snapshot()
    status, body = await api.post(f"{RUNS}/{run_id}/replay", replay)
    assert_envelope(status, body, "VALIDATION_FAILED", 400)
    status, body = await api.post(f"{RUNS}/{run_id}/replay", {"jobIds": [ids["a"]]},
                                  headers=REASON)  # fmt: skip
    assert_envelope(status, body, "ILLEGAL_TRANSITION", 409)
    assert await api.snapshot() == before
    status, body = await api.post(f"{RUNS}/{run_id}/replay", replay, headers=REASON)
    assert status == 200, body
    assert sorted(body["replayed"]) == sorted([ids["b"], ids["c"]])
    assert body["status"] == "running"
    rerun = []
    while claimed := await claim(api):
        rerun += [j["payload"]["key"] for j in claimed]
        await api.ack(*(done(j) for j in claimed))
    assert rerun == ["b", "c"]
    assert (await run_view(api, run_id))["status"] == "succeeded"
    [entry] = await api.broker.ledger.read_audit("tenant-a", 10)
    assert entry.action == "run.replay" and entry.reason == REASON["X-Stella-Operator-Reason"]


async def test_job_replay_clones_a_finished_job(api: Api) -> None:
    [original] = await api.submit(job("scan", {"n": 1}, maxAttempts=1))
    status, body = await api.post(f"{SUBMIT}/{original['jobId']}/replay")
    assert_envelope(status, body, "ILLEGAL_TRANSITION", 409)  # still live
    [leased] = await api.claim()
    await api.ack(done(leased, "failed", error={"class": "x", "retryable": False}))
    status, body = await api.post(f"{SUBMIT}/{original['jobId']}/replay", headers=REASON)
    assert status == 201 and body["replayOf"] == original["jobId"]
    clone = await api.read(body["jobId"])
    assert clone["priority"] == 9 and clone["payload"] == {"n": 1}
    assert clone["replayOf"] == original["jobId"] and clone["state"] == "ready"
    status, body = await api.post(f"{SUBMIT}/{original['jobId']}/replay", tenant=OTHER)
    assert_envelope(status, body, "NOT_FOUND", 404)


async def test_cancel_one_job(api: Api) -> None:
    [submitted] = await api.submit(job())
    status, body = await api.post(f"{SUBMIT}/{submitted['jobId']}/cancel", tenant=OTHER)
    assert_envelope(status, body, "NOT_FOUND", 404)
    status, body = await api.post(f"{SUBMIT}/{submitted['jobId']}/cancel")
    assert status == 200 and body["state"] == "canceled"
    status, body = await api.post(f"{SUBMIT}/{submitted['jobId']}/cancel")
    assert_envelope(status, body, "ILLEGAL_TRANSITION", 409)


async def test_list_runs_pages_and_filters(api: Api) -> None:
    made = []
    for _ in range(5):
        made.append((await create(api, [step("only")]))["runId"])
        await api.advance(1)
    [leased] = await claim(api, 1)
    await api.ack(done(leased, "failed", error={"class": "x", "retryable": False}))
    seen, token = [], None
    while True:
        query = "?page_size=2" + (f"&page_token={token}" if token else "")
        status, page = await api.get(f"{RUNS}{query}")
        assert status == 200 and len(page["runs"]) <= 2
        seen += [r["runId"] for r in page["runs"]]
        token = page["nextPageToken"]
        if token is None:
            break
    assert seen == made[::-1]
    status, failed = await api.get(f"{RUNS}?status=failed")
    assert [r["runId"] for r in failed["runs"]] == [made[0]]
    status, theirs = await api.get(RUNS, tenant=OTHER)
    assert theirs == {"runs": [], "nextPageToken": None}


@pytest.mark.parametrize(
    "query",
    [
        "?page_size=0",
        "?page_size=501",
        "?page_size=x",
        "?page_size=%C2%B2",  # "²": a digit to str.isdigit, not to int()
        "?page_token=zzz",
        "?status=odd",
    ],
)
async def test_bad_list_queries(api: Api, query: str) -> None:
    status, body = await api.get(f"{RUNS}{query}")
    assert_envelope(status, body, "VALIDATION_FAILED", 400)


async def test_run_routes_need_their_scopes(api: Api) -> None:
    status, body = await api.post(RUNS, {"jobs": PIPELINE}, scopes="orch:read")
    assert_envelope(status, body, "FORBIDDEN", 403)
    status, body = await api.get(RUNS, scopes="orch:worker")
    assert_envelope(status, body, "FORBIDDEN", 403)
