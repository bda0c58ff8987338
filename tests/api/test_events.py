"""``GET /events``: Server-Sent Events of incidents, operator actions and runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import ClientResponse

from .conftest import BASE, NOW_MS, OTHER, TENANT, Api, assert_envelope, rfc3339
from .test_limits import HOST, SOURCES, done, fetch, operate, take
from .test_metrics import scrape, value

EVENTS = f"{BASE}/events"


class Stream:
    def __init__(self, response: ClientResponse) -> None:
        self.response = response

    async def frame(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """The next event (comments skipped) as {"id", "event", "data"}."""
        while True:
            raw = await asyncio.wait_for(self.response.content.readuntil(b"\n\n"), timeout_s)
            lines = raw.decode().strip().split("\n")
            if all(line.startswith(":") for line in lines):
                continue
            fields = dict(line.split(": ", 1) for line in lines)
            return {
                "id": int(fields["id"]),
                "event": fields["event"],
                "data": orjson.loads(fields["data"]),
            }

    async def nothing_for(self, seconds: float) -> bool:
        try:
            await self.frame(seconds)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def stream(
    api: Api, tenant: str = TENANT, last_id: int | None = None, opening: str | None = None
) -> AsyncIterator[Stream]:
    headers = api.headers(tenant, "orch:read")
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    async with api.client.get(EVENTS, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 2)
        if opening is not None:
            assert first == f": {opening}\n\n".encode()
        yield Stream(response)


async def test_an_opening_breaker_is_an_incident_event(api: Api) -> None:
    async with stream(api, opening="from-now") as events:
        await operate(api, "PUT", f"{SOURCES}/{HOST}", {})  # breakers watch configured sources
        configured = await events.frame()
        assert configured["event"] == "operator"
        assert configured["data"]["action"] == "source.set"
        assert configured["data"]["target"] == HOST
        await api.submit(*[fetch(maxAttempts=1) for _ in range(20)])
        claimed = await take(api, 20)
        failure = {"class": "boom", "retryable": False}
        await api.ack(*[done(j, "failed", error=failure) for j in claimed])
        incident = await events.frame()
    assert incident["event"] == "incident" and incident["id"] > configured["id"]
    assert incident["data"] == {
        "at": rfc3339(NOW_MS),
        "actor": "broker",
        "action": "breaker.opened",
        "target": f"fetch@{HOST}",
        "reason": "failure rate over the threshold",
        "ticket": None,
    }


async def test_a_tenant_hears_only_its_own_events(api: Api) -> None:
    async with stream(api, tenant=OTHER) as theirs, stream(api) as ours:
        await operate(api, "PUT", f"{SOURCES}/{HOST}", {})
        assert (await ours.frame())["data"]["target"] == HOST
        assert await theirs.nothing_for(0.3)


async def test_a_run_reports_its_status(api: Api) -> None:
    async with stream(api) as events:
        status, body = await api.post(
            f"{BASE}/runs", {"jobs": [{"jobType": "scan", "payload": {}, "key": "only"}]}
        )
        assert status == 201, body
        event = await events.frame()
    assert event["event"] == "run"
    assert event["data"] == {"at": rfc3339(NOW_MS), "runId": body["runId"], "status": "running"}


async def test_a_reconnect_resumes_after_the_last_event_it_saw(api: Api) -> None:
    async with stream(api) as events:
        await operate(api, "PUT", f"{SOURCES}/a.example", {})
        first = await events.frame()
    for host in ("b.example", "c.example"):  # while nobody listens
        await operate(api, "PUT", f"{SOURCES}/{host}", {})
    async with stream(api, last_id=first["id"], opening="resumed") as events:
        missed = [await events.frame(), await events.frame()]
    assert [e["data"]["target"] for e in missed] == ["b.example", "c.example"]
    assert [e["id"] for e in missed] == [first["id"] + 1, first["id"] + 2]


async def test_a_refused_stream_says_why(api: Api) -> None:
    for last in ("soon", "\u00b2"):  # "²": a digit to str.isdigit, not to int()
        status, body = await api.get(EVENTS, headers={"Last-Event-ID": last})
        assert_envelope(status, body, "VALIDATION_FAILED", 400)
    status, body = await api.get(EVENTS, auth=False)
    assert_envelope(status, body, "UNAUTHENTICATED", 401)
    status, body = await api.get(EVENTS, scopes="orch:worker")
    assert_envelope(status, body, "FORBIDDEN", 403)
    assert len(api.broker.events) == 0  # no subscription was left behind


async def test_stopping_the_broker_ends_the_stream(api: Api) -> None:
    async with stream(api) as events:
        assert len(api.broker.events) == 1
        await api.broker.stop()
        end = await asyncio.wait_for(events.response.content.read(), 2)
    assert end == b""
    assert len(api.broker.events) == 0


async def test_metrics_count_streams_and_events(api: Api) -> None:
    samples, kinds = await scrape(api)
    assert value(samples, "orchestrator_event_subscribers") == 0
    assert kinds["orchestrator_event_subscribers"] == "gauge"
    async with stream(api) as events:
        await operate(api, "PUT", f"{SOURCES}/{HOST}", {})
        await events.frame()
        samples, _ = await scrape(api)
        assert value(samples, "orchestrator_event_subscribers") == 1
        assert value(samples, "orchestrator_events_published_total") == 1
