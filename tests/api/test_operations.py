"""/healthz, /readyz and BACKPRESSURE: the operational answers."""

from __future__ import annotations

from broker.service import ServiceSettings

from .conftest import ACK, CLAIM, SUBMIT, Api, MakeApi, assert_envelope, job


async def test_healthz(api: Api) -> None:
    status, body = await api.get("/healthz", auth=False)
    assert status == 200 and body["status"] == "ok"


async def test_healthz_even_when_not_started(make_api: MakeApi) -> None:
    api = await make_api(start=False)
    status, _ = await api.get("/healthz", auth=False)
    assert status == 200


async def test_readyz_when_started(api: Api) -> None:
    status, body = await api.get("/readyz", auth=False)
    assert status == 200 and body["status"] == "ready"


async def test_readyz_not_started(make_api: MakeApi) -> None:
    api = await make_api(start=False)
    status, body = await api.get("/readyz", auth=False)
    assert_envelope(status, body, "NOT_READY", 503)


async def test_readyz_503_carries_retry_after(make_api: MakeApi) -> None:
    # API.md, Errors: "429 and 503 carry Retry-After (seconds)"
    api = await make_api(start=False)
    async with api.client.get("/readyz") as resp:
        assert resp.status == 503
        assert resp.headers.get("Retry-After", "").isdigit(), dict(resp.headers)


async def test_readyz_when_the_store_does_not_answer(api: Api) -> None:
    await api.ledger.close()
    try:
        status, body = await api.get("/readyz", auth=False)
        assert_envelope(status, body, "NOT_READY", 503)
    finally:
        await api.ledger.open()
    status, _ = await api.get("/readyz", auth=False)
    assert status == 200


async def test_backpressure_refuses_durable_writes(make_api: MakeApi) -> None:
    api = await make_api(service=ServiceSettings(max_backlog=0))
    before = await api.snapshot()
    async with api.client.post(SUBMIT, json={"jobs": [job()]}, headers=api.headers()) as resp:
        body = await resp.json()
        assert_envelope(resp.status, body, "BACKPRESSURE", 503)
        assert resp.headers["Retry-After"].isdigit()
    assert await api.snapshot() == before
    async with api.client.post(
        ACK,
        json={"workerId": "w", "results": [{"jobId": "x", "leaseId": "y", "status": "succeeded"}]},
        headers=api.headers(),
    ) as resp:
        assert_envelope(resp.status, await resp.json(), "BACKPRESSURE", 503)
        assert resp.headers["Retry-After"].isdigit()
    # claims are write-behind and still answered
    status, body = await api.post(CLAIM, {"workerId": "w", "jobTypes": ["scan"]})
    assert status == 200 and body == {"jobs": []}
