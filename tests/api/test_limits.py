"""Flow control over HTTP: quotas, sources (rate, throttle, blackouts, pause),
circuit breakers, operator audit, backpressure, manual retry and restarts.

Everything runs on the manual clock of ``conftest``: ``api.advance(ms)`` moves
it and runs the reaper / timer pump once, which is also what lifts limits.
Claims lease for ten minutes so that no lease expires while a test moves time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from broker.api.app import ApiSettings, make_app
from broker.api.auth import Authenticator, issue_token
from broker.engine.limits import Blackout, Quota, Source
from broker.service import Broker, ServiceSettings

from .conftest import (
    BASE,
    HEARTBEAT,
    NOW_MS,
    OTHER,
    SUBMIT,
    TENANT,
    Api,
    MakeApi,
    assert_envelope,
    detail_fields,
    job,
    rfc3339,
)

QUOTAS = f"{BASE}/quotas"
SOURCES = f"{BASE}/sources"
AUDIT = f"{BASE}/audit"
FAIRNESS = f"{BASE}/fairness"
HOST = "nvd.nist.gov"
REASON_HEADER = "X-Stella-Operator-Reason"
TICKET_HEADER = "X-Stella-Operator-Ticket"
QUOTA_SCOPES = "orch:quota orch:read"
LEASE_S = 600


# -- helpers ---------------------------------------------------------------------------
async def operate(
    api: Api,
    method: str,
    path: str,
    body: Any = None,
    *,
    reason: str | None = "load shedding, INC-7",
    ticket: str | None = None,
    scopes: str = QUOTA_SCOPES,
    tenant: str = TENANT,
    subject: str | None = None,
    expect: int = 200,
) -> Any:
    """An operator request; asserts its status and returns the body."""
    headers: dict[str, str] = {}
    if reason is not None:
        headers[REASON_HEADER] = reason
    if ticket is not None:
        headers[TICKET_HEADER] = ticket
    if subject is not None:
        token = issue_token(api.keys, tenant, scopes, subject=subject)
        headers["Authorization"] = f"Bearer {token}"
    status, reply = await api.request(
        method, path, body, tenant=tenant, scopes=scopes, headers=headers
    )
    assert status == expect, (method, path, status, reply)
    return reply


def fetch(host: str | None = HOST, job_type: str = "fetch", **fields: Any) -> dict[str, Any]:
    """A job of ``host`` (None: of no source); its payload names the host ("-": none)."""
    if host is not None:
        fields["sourceHost"] = host
    return job(job_type, {"host": host or "-"}, **fields)


def hosts(claimed: list[dict[str, Any]]) -> list[str]:
    return sorted(j["payload"]["host"] for j in claimed)


async def take(
    api: Api, n: int = 10, types: list[str] | None = None, tenant: str = TENANT, **extra: Any
) -> list[dict[str, Any]]:
    return await api.claim(types or ["fetch"], n, tenant=tenant, leaseSeconds=LEASE_S, **extra)


def done(claimed: dict[str, Any], status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"jobId": claimed["jobId"], "leaseId": claimed["leaseId"], "status": status, **extra}


async def source_view(api: Api, host: str = HOST) -> dict[str, Any]:
    status, body = await api.get(f"{SOURCES}/{host}", scopes="orch:read")
    assert status == 200, body
    return body


async def quota_views(api: Api) -> dict[str, dict[str, Any]]:
    status, body = await api.get(QUOTAS, scopes="orch:read")
    assert status == 200, body
    return {q["jobType"]: q for q in body["quotas"]}


@asynccontextmanager
async def restarted(api: Api, aiohttp_client: Any) -> AsyncIterator[Api]:
    """``api``'s broker stopped, and a new one started on the same ledger and clock."""
    await api.broker.stop()
    broker = Broker(api.ledger, ServiceSettings(), api.clock)
    await broker.start()
    try:
        app = make_app(broker, Authenticator(api.keys), ApiSettings())
        yield Api(await aiohttp_client(app), app, broker, api.clock, api.ledger, api.keys)
    finally:
        await broker.stop()


async def audit_entries(api: Api, tenant: str = TENANT) -> list[dict[str, Any]]:
    status, body = await api.get(f"{AUDIT}?page_size=500", tenant=tenant, scopes="orch:read")
    assert status == 200, body
    return body["entries"]


async def limits_seen(api: Api) -> tuple[Any, ...]:
    """What the limit routes show, for "nothing changed" comparisons."""
    quotas = await api.get(QUOTAS, scopes="orch:read")
    sources = await api.get(SOURCES, scopes="orch:read")
    return quotas, sources, await audit_entries(api)


# -- 1. pause ----------------------------------------------------------------------------
async def test_pause_stops_claims_but_not_in_flight_work(api: Api) -> None:
    await api.submit(*[job() for _ in range(5)], job("other"))
    [leased] = await api.claim(["scan"], 1)
    view = await operate(api, "POST", f"{QUOTAS}/scan/pause")
    assert view["jobType"] == "scan" and view["paused"] is True
    assert await api.claim(["scan"]) == []
    assert await api.claim(["scan"]) == []  # the held queue stays held
    assert len(await api.claim(["other"])) == 1  # another job type is not paused
    status, body = await api.post(
        HEARTBEAT,
        {
            "workerId": "w-1",
            "leases": [
                {"jobId": leased["jobId"], "leaseId": leased["leaseId"], "extendSeconds": 30}
            ],
        },
    )
    assert status == 200 and body["leases"][0]["status"] == "extended", body
    [acked] = await api.ack(done(leased))
    assert acked["outcome"] == "accepted" and acked["state"] == "succeeded"
    status, summary = await api.get(f"{QUOTAS}/summary", scopes="orch:read")
    assert status == 200 and summary["paused"] == ["scan"] and summary["liveJobs"] == 5
    view = await operate(api, "POST", f"{QUOTAS}/scan/resume")
    assert view["paused"] is False
    rest = await api.claim(["scan"])
    assert len(rest) == 4 and all(j["attempt"] == 1 for j in rest)


async def test_a_long_poll_parked_while_paused_is_answered_on_resume(api: Api) -> None:
    await operate(api, "POST", f"{QUOTAS}/scan/pause")
    await api.submit(job(), job())
    assert await api.claim(["scan"]) == []
    started = time.monotonic()
    poll = asyncio.create_task(api.claim(["scan"], 10, waitMs=20_000))
    await asyncio.sleep(0.2)
    assert not poll.done()  # parked: paused, nothing claimable
    await operate(api, "POST", f"{QUOTAS}/scan/resume")
    got = await asyncio.wait_for(poll, 5)
    assert len(got) == 2
    assert time.monotonic() - started < 5  # woken by the resume, not by the wait's end


# -- 2. quotas -----------------------------------------------------------------------------
async def test_quota_max_active(api: Api) -> None:
    view = await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 2})
    assert view == {
        "jobType": "scan", "maxActive": 2, "perHour": None, "burst": None, "paused": False,
        "inFlight": 0, "tokens": None, "held": False,
    }  # fmt: skip
    await api.submit(*[job() for _ in range(5)])
    first = await api.claim(["scan"], 10)
    assert len(first) == 2
    assert await api.claim(["scan"], 10) == []
    assert (await quota_views(api))["scan"]["inFlight"] == 2
    await api.ack(done(first[0]))
    assert len(await api.claim(["scan"], 10)) == 1
    assert await api.claim(["scan"], 10) == []
    assert (await quota_views(api))["scan"]["inFlight"] == 2


async def test_quota_per_hour_with_burst(api: Api) -> None:
    await operate(api, "PUT", f"{QUOTAS}/scan", {"perHour": 3600, "burst": 2})
    await api.submit(*[job() for _ in range(6)])
    assert len(await api.claim(["scan"], 10)) == 2
    assert await api.claim(["scan"], 10) == []
    await api.advance(999)
    assert await api.claim(["scan"], 10) == []
    await api.advance(1)
    assert len(await api.claim(["scan"], 10)) == 1
    assert await api.claim(["scan"], 10) == []
    await api.advance(5_000)  # five tokens' worth, but the burst keeps two
    assert len(await api.claim(["scan"], 10)) == 2


async def test_removing_a_quota_lifts_it(api: Api) -> None:
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 1})
    await api.submit(*[job() for _ in range(3)])
    assert len(await api.claim(["scan"], 10)) == 1
    reply = await operate(api, "DELETE", f"{QUOTAS}/scan")
    assert reply == {"jobType": "scan", "removed": True}
    assert len(await api.claim(["scan"], 10)) == 2
    assert await quota_views(api) == {}


async def test_max_active_counts_jobs_leased_before_the_quota(api: Api) -> None:
    await api.submit(*[job() for _ in range(5)])
    assert len(await api.claim(["scan"], 3)) == 3
    view = await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 2})
    assert view["inFlight"] == 3
    assert await api.claim(["scan"], 10) == []


# -- 3. sources ---------------------------------------------------------------------------
async def test_source_rate_and_burst(api: Api) -> None:
    view = await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 1, "burst": 2})
    assert view["host"] == HOST and view["rate"] == 1.0 and view["configuredRate"] == 1.0
    assert view["burst"] == 2 and view["tokens"] == 2 and view["penalties"] == 0
    assert view["inFlight"] == 0 and view["parked"] == 0 and view["paused"] is False
    assert view["blackouts"] == [] and view["breakers"] == {} and view["penaltyUntil"] is None
    await api.submit(*[fetch() for _ in range(5)], fetch(None), fetch("other.example"))
    first = await take(api)
    assert hosts(first) == ["-", HOST, HOST, "other.example"]
    view = await source_view(api)
    assert view["tokens"] == 0 and view["parked"] == 3
    assert await take(api) == []
    await api.advance(999)
    assert await take(api) == []
    await api.advance(1)
    assert len(await take(api)) == 1
    await api.advance(10_000)  # the burst caps what a quiet spell saves up
    assert len(await take(api)) == 2
    assert (await source_view(api))["parked"] == 0


async def test_source_max_active(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"maxActive": 1})
    await api.submit(*[fetch() for _ in range(3)])
    [first] = await take(api)
    assert await take(api) == []
    view = await source_view(api)
    assert view["maxActive"] == 1 and view["inFlight"] == 1 and view["parked"] == 2
    assert view["rate"] is None and view["tokens"] is None
    await api.ack(done(first))
    [second] = await take(api)
    assert await take(api) == []
    await api.ack(done(second, "failed", error={"class": "boom", "retryable": False}))
    assert len(await take(api)) == 1


async def test_source_pause_and_resume(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 100, "burst": 100})
    await api.submit(fetch(), fetch(), fetch(None))
    view = await operate(api, "POST", f"{SOURCES}/{HOST}/pause")
    assert view["paused"] is True and view["rate"] == 100.0
    assert hosts(await take(api)) == ["-"]
    assert (await source_view(api))["parked"] == 2
    await api.advance(60_000)
    assert await take(api) == []
    view = await operate(api, "POST", f"{SOURCES}/{HOST}/resume")
    assert view["paused"] is False
    assert len(await take(api)) == 2


async def test_pausing_an_unknown_source_creates_a_paused_one(api: Api) -> None:
    await api.submit(fetch("new.example"))
    view = await operate(api, "POST", f"{SOURCES}/new.example/pause")
    assert view["paused"] is True and view["rate"] is None
    assert await take(api) == []
    await operate(api, "POST", f"{SOURCES}/new.example/resume")
    assert len(await take(api)) == 1


async def test_throttle_takes_effect(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 2, "burst": 1})
    await api.submit(*[fetch() for _ in range(10)])
    view = await operate(api, "POST", f"{SOURCES}/{HOST}/throttle", {"rate": 0.5, "seconds": 10})
    assert view["rate"] == 0.5 and view["throttleRate"] == 0.5
    assert view["throttleUntil"] == rfc3339(NOW_MS + 10_000)
    assert len(await take(api)) == 1
    await api.advance(500)  # a token at the configured 2/s; none at 0.5/s
    assert await take(api) == []
    await api.advance(1_500)
    assert len(await take(api)) == 1
    # a throttle does not raise a rate: 5/s throttles a 2/s source to 2/s
    view = await operate(api, "POST", f"{SOURCES}/{HOST}/throttle", {"rate": 5, "seconds": 10})
    assert view["rate"] == 2.0


async def test_throttle_expires(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 2, "burst": 1})
    await api.submit(*[fetch() for _ in range(10)])
    await operate(api, "POST", f"{SOURCES}/{HOST}/throttle", {"rate": 0.5, "seconds": 10})
    assert len(await take(api)) == 1
    await api.advance(10_000)  # the throttle ended
    assert len(await take(api)) == 1
    await api.advance(500)  # 2/s again: a token every 500 ms
    assert len(await take(api)) == 1
    view = await source_view(api)
    assert view["rate"] == 2.0 and view["configuredRate"] == 2.0


async def test_an_expired_throttle_is_not_shown_as_in_force(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 2, "burst": 1})
    await operate(api, "POST", f"{SOURCES}/{HOST}/throttle", {"rate": 0.5, "seconds": 10})
    await api.advance(10_000)
    view = await source_view(api)
    assert view["rate"] == 2.0 and view["configuredRate"] == 2.0, view


async def test_pause_and_resume_keep_the_429_rate_cut(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 10, "burst": 10})
    await api.submit(fetch())
    [leased] = await take(api)
    await api.ack(done(leased, "failed", error={"class": "http_429", "retryable": False}))
    cut = (await source_view(api))["rate"]
    assert cut < 10.0
    await operate(api, "POST", f"{SOURCES}/{HOST}/pause")
    await operate(api, "POST", f"{SOURCES}/{HOST}/resume")
    assert (await source_view(api))["rate"] == cut


async def test_an_upstream_429_slows_the_source(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 10, "burst": 10})
    await api.submit(*[fetch() for _ in range(4)])
    [first] = await take(api, 1)
    error = {"class": "http_429", "retryAfterSeconds": 2, "retryable": False}
    [acked] = await api.ack(done(first, "failed", error=error))
    assert acked["state"] == "dead"
    view = await source_view(api)
    assert view["penalties"] == 1 and view["configuredRate"] == 10.0
    assert view["rate"] < view["configuredRate"]
    assert view["penaltyUntil"] == rfc3339(NOW_MS + 2_000)
    assert await take(api) == []  # the bucket waits out the retry-after
    await api.advance(2_000)
    second, *rest = await take(api)
    assert len(rest) == 2
    # a retry-after alone (no http_429 class) also counts as throttling
    await api.ack(done(second, "failed", error={"class": "other", "retryAfterSeconds": 1}))
    later = await source_view(api)
    assert later["penalties"] == 2 and later["rate"] < view["rate"]


async def test_unknown_source_views(api: Api) -> None:
    status, body = await api.get(f"{SOURCES}/nowhere.example", scopes="orch:read")
    assert_envelope(status, body, "NOT_FOUND", 404)
    status, body = await api.get(SOURCES, scopes="orch:read")
    assert status == 200 and body == {"sources": []}


# -- 4. blackouts ----------------------------------------------------------------------------
async def test_a_blackout_window_holds_a_source_until_it_ends(api: Api) -> None:
    window = {"start": rfc3339(NOW_MS), "end": rfc3339(NOW_MS + 60_000)}
    view = await operate(api, "PUT", f"{SOURCES}/{HOST}", {"blackouts": [window]})
    assert view["blackouts"] == [{**window, "daily": False}]
    await api.submit(fetch(), fetch(), fetch("other.example"))
    assert hosts(await take(api)) == ["other.example"]
    await api.advance(59_999)
    assert await take(api) == []
    await api.advance(1)
    assert len(await take(api)) == 2


async def test_a_future_blackout_window_does_not_hold_now(api: Api) -> None:
    window = {"start": rfc3339(NOW_MS + 1_000), "end": rfc3339(NOW_MS + 2_000)}
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"blackouts": [window]})
    await api.submit(fetch(), fetch())
    assert len(await take(api, 1)) == 1
    await api.advance(1_000)
    assert await take(api) == []
    await api.advance(1_000)
    assert len(await take(api)) == 1


def daily(start_minute: int, end_minute: int) -> dict[str, Any]:
    """A daily window between two minutes of the day ("HH:MM", UTC)."""
    start, end = start_minute % 1440, end_minute % 1440
    return {
        "start": f"{start // 60:02d}:{start % 60:02d}",
        "end": f"{end // 60:02d}:{end % 60:02d}",
        "daily": True,
    }


MINUTE = NOW_MS % 86_400_000 // 60_000  # the manual clock's minute of the day (UTC)


async def test_a_daily_blackout_window(api: Api) -> None:
    assert NOW_MS % 60_000 == 0
    window = daily(MINUTE - 1, MINUTE + 1)
    view = await operate(api, "PUT", f"{SOURCES}/{HOST}", {"blackouts": [window]})
    assert view["blackouts"] == [window]
    await api.submit(fetch(), fetch())
    assert await take(api) == []
    await api.advance(59_999)  # the window ends at the next whole minute
    assert await take(api) == []
    await api.advance(1)
    assert len(await take(api)) == 2


async def test_a_daily_blackout_recurs_the_next_day(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"blackouts": [daily(MINUTE + 1, MINUTE + 2)]})
    await api.submit(*[fetch() for _ in range(3)])
    [first] = await take(api, 1)  # not yet in the window
    await api.ack(done(first))
    await api.advance(86_400_000 + 60_000)  # one day on, inside the window
    assert await take(api) == []
    await api.advance(60_000)
    assert len(await take(api)) == 2


async def test_a_daily_blackout_across_midnight(make_api: MakeApi) -> None:
    midnight = NOW_MS - NOW_MS % 86_400_000 + 86_400_000
    api = await make_api(now_ms=midnight - 30_000)  # 23:59:30
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"blackouts": [daily(-1, 1)]})  # 23:59-00:01
    await api.submit(fetch())
    assert await take(api) == []
    await api.advance(89_999)  # 00:00:59.999
    assert await take(api) == []
    await api.advance(1)
    assert len(await take(api)) == 1


# -- 5. circuit breaker ----------------------------------------------------------------------
async def test_the_circuit_breaker_opens_and_a_probe_closes_it(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {})  # configured: breakers watch it
    await api.submit(*[fetch(maxAttempts=1) for _ in range(26)])
    first = await take(api, 19)
    errors = [{"class": "boom", "retryable": i % 2 == 0} for i in range(19)]
    await api.ack(*[done(j, "failed", error=e) for j, e in zip(first, errors, strict=True)])
    [twentieth] = await take(api, 1)  # 19 attempts say nothing yet
    assert not [e for e in await audit_entries(api) if e["action"] == "breaker.opened"]
    await api.ack(done(twentieth, "failed", error={"class": "boom", "retryable": False}))
    opened = [e for e in await audit_entries(api) if e["action"] == "breaker.opened"]
    assert len(opened) == 1
    assert opened[0]["actor"] == "broker" and opened[0]["target"] == f"fetch@{HOST}"
    assert opened[0]["reason"] and opened[0]["at"] == rfc3339(NOW_MS)
    view = await source_view(api)
    assert view["breakers"] == {"fetch": {"state": "open", "failures": 20, "attempts": 20}}
    assert await take(api) == []
    assert (await source_view(api))["parked"] == 6
    await api.advance(29_999)
    assert await take(api) == []
    await api.advance(1)  # the cool-down ended: one probe at a time
    [probe] = await take(api)
    assert (await source_view(api))["breakers"]["fetch"]["state"] == "half_open"
    await api.ack(done(probe))
    assert (await source_view(api))["breakers"].get("fetch", {"state": "closed"})[
        "state"
    ] == "closed"
    await api.advance(1_000)
    assert len(await take(api)) == 5


async def test_a_failed_probe_opens_the_breaker_again(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {})
    await api.submit(*[fetch(maxAttempts=1) for _ in range(22)])
    leased = await take(api, 20)
    await api.ack(*[done(j, "failed", error={"retryable": False}) for j in leased])
    await api.advance(30_000)
    [probe] = await take(api)
    await api.ack(done(probe, "failed", error={"retryable": False}))
    assert (await source_view(api))["breakers"]["fetch"]["state"] == "open"
    opened = [e for e in await audit_entries(api) if e["action"] == "breaker.opened"]
    assert len(opened) == 2
    assert await take(api) == []
    await api.advance(30_000)
    assert len(await take(api)) == 1


async def test_breakers_watch_only_configured_sources(api: Api) -> None:
    await api.submit(*[fetch(maxAttempts=1) for _ in range(22)])
    leased = await take(api, 20)
    await api.ack(*[done(j, "failed", error={"retryable": False}) for j in leased])
    assert len(await take(api)) == 2
    assert not [e for e in await audit_entries(api) if e["action"] == "breaker.opened"]


async def test_an_open_breaker_does_not_hold_other_job_types_of_the_source(api: Api) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {})
    await api.submit(*[fetch(maxAttempts=1) for _ in range(21)])
    leased = await take(api, 20)
    await api.ack(*[done(j, "failed", error={"retryable": False}) for j in leased])
    await api.submit(fetch(job_type="parse"), fetch(job_type="parse"))
    got = await take(api, 10, ["fetch", "parse"])
    assert [j["jobType"] for j in got] == ["parse", "parse"]


# -- 6. operator actions: reason, scope, audit ------------------------------------------------
async def dead_job(api: Api) -> dict[str, Any]:
    """A job that failed its only attempt (dead)."""
    [created] = await api.submit(job("once", maxAttempts=1))
    [leased] = await api.claim(["once"], 1)
    await api.ack(done(leased, "failed", error={"class": "boom", "retryable": False}))
    assert (await api.read(created["jobId"]))["state"] == "dead"
    return created


def operator_actions(job_id: str) -> list[tuple[str, str, Any, str, str]]:
    """(method, path, body, action, target) of every operator action, in an order that
    each one is accepted after the ones before it."""
    return [
        ("PUT", f"{QUOTAS}/scan", {"maxActive": 3}, "quota.set", "scan"),
        ("POST", f"{QUOTAS}/scan/pause", None, "quota.pause", "scan"),
        ("POST", f"{QUOTAS}/scan/resume", None, "quota.resume", "scan"),
        ("PUT", f"{SOURCES}/{HOST}", {"rate": 5}, "source.set", HOST),
        ("POST", f"{SOURCES}/{HOST}/pause", None, "source.pause", HOST),
        ("POST", f"{SOURCES}/{HOST}/resume", None, "source.resume", HOST),
        ("POST", f"{SOURCES}/{HOST}/throttle", {"rate": 1, "seconds": 60}, "source.throttle",
         HOST),
        ("PUT", FAIRNESS, {"weight": 3}, "fairness.weight", ""),
        ("POST", f"{BASE}/jobs/{job_id}/retry", None, "job.retry", job_id),
        ("DELETE", f"{QUOTAS}/scan", None, "quota.remove", "scan"),
        ("DELETE", f"{SOURCES}/{HOST}", None, "source.remove", HOST),
    ]  # fmt: skip


def scopes_for(path: str) -> str:
    return "orch:operate orch:read" if path.endswith("/retry") else QUOTA_SCOPES


async def test_operator_actions_without_a_reason_change_nothing(api: Api) -> None:
    created = await dead_job(api)
    # something for the removals and pauses to change, were they accepted
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 3})
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 5})
    await api.submit(job(), fetch())
    before = await api.snapshot()
    seen = await limits_seen(api)
    for method, path, body, _, _ in operator_actions(created["jobId"]):
        for reason in (None, "", "   ", "x" * 257):
            status, reply = await api.request(
                method,
                path,
                body,
                scopes=scopes_for(path),
                headers={} if reason is None else {REASON_HEADER: reason},
            )
            error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
            assert REASON_HEADER in detail_fields(error), (method, path, reason)
        status, reply = await api.request(
            method,
            path,
            body,
            scopes=scopes_for(path),
            headers={REASON_HEADER: "ok", TICKET_HEADER: "t" * 129},
        )
        error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
        assert TICKET_HEADER in detail_fields(error)
        # a byte that is not UTF-8 could never be written to the audit log: refused, or
        # the flush holding it would fail for good and hold every later durable answer
        raw_body = json.dumps(body).encode() if body is not None else b""
        for header, value in ((REASON_HEADER, b"bad \xff byte"), (TICKET_HEADER, b"\xc3")):
            fields = {REASON_HEADER.encode(): b"ok", header.encode(): value}
            status, reply = await api.raw(method, path, fields, raw_body, scopes_for(path))
            error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
            assert header in detail_fields(error), (method, path, header)
    assert await api.snapshot() == before
    assert await limits_seen(api) == seen


async def test_operator_actions_need_their_scope(api: Api) -> None:
    created = await dead_job(api)
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 3})
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 5})
    before = await api.snapshot()
    seen = await limits_seen(api)
    for method, path, body, _, _ in operator_actions(created["jobId"]):
        wrong = (
            "orch:read orch:quota orch:worker"
            if path.endswith("/retry")
            else "orch:read orch:operate orch:worker orch:backfill"
        )
        status, reply = await api.request(
            method, path, body, scopes=wrong, headers={REASON_HEADER: "why not"}
        )
        assert_envelope(status, reply, "FORBIDDEN", 403)
        status, reply = await api.request(
            method, path, body, auth=False, headers={REASON_HEADER: "why not"}
        )
        assert_envelope(status, reply, "UNAUTHENTICATED", 401)
    for path in (QUOTAS, f"{QUOTAS}/summary", SOURCES, f"{SOURCES}/{HOST}", AUDIT):
        status, reply = await api.get(path, scopes="orch:worker")
        assert_envelope(status, reply, "FORBIDDEN", 403)
    assert await api.snapshot() == before
    assert await limits_seen(api) == seen


async def test_every_accepted_action_is_audited(api: Api) -> None:
    created = await dead_job(api)
    actions = operator_actions(created["jobId"])
    for index, (method, path, body, _, _) in enumerate(actions):
        await operate(
            api,
            method,
            path,
            body,
            scopes=scopes_for(path),
            subject="alice@ops",
            reason=f"reason {index}",
            ticket=f"CHG-{index}" if index % 2 else None,
        )
    entries = await audit_entries(api)
    assert len(entries) == len(actions)
    expected = [
        {
            "at": rfc3339(NOW_MS),
            "actor": "alice@ops",
            "action": action,
            "target": target,
            "reason": f"reason {index}",
            "ticket": f"CHG-{index}" if index % 2 else None,
        }
        for index, (_, _, _, action, target) in enumerate(actions)
    ]
    assert entries == expected[::-1]  # newest first
    assert await audit_entries(api, OTHER) == []
    status, body = await api.get(f"{AUDIT}?page_size=2", scopes="orch:read")
    assert status == 200 and body["entries"] == expected[::-1][:2]


async def test_the_audit_shows_a_quota_scoped_token_too(api: Api) -> None:
    await operate(api, "PUT", FAIRNESS, {"weight": 2}, ticket="CHG-1")
    status, body = await api.get(AUDIT, scopes="orch:quota")
    assert status == 200 and body["entries"][0]["ticket"] == "CHG-1"


# -- 7. validation ---------------------------------------------------------------------------
BAD_QUOTAS: list[tuple[Any, str]] = [
    ({"maxActive": -1}, "maxActive"),
    ({"perHour": 0}, "perHour"),
    ({"burst": 0}, "burst"),
    ({"perHour": -5}, "perHour"),
    ({"maxActive": "2"}, "maxActive"),
    ({"maxActive": 1.5}, "maxActive"),
    ({"maxActive": True}, "maxActive"),
    ({"perHour": 10**12}, "perHour"),
    ({"paused": "yes"}, "paused"),
    ({"paused": 1}, "paused"),
    ({"maxActive": 1, "bogus": 1}, ""),
    ([], ""),
    ("quota", ""),
    (None, ""),
]


@pytest.mark.parametrize(("body", "field"), BAD_QUOTAS)
async def test_bad_quotas_are_refused(api: Api, body: Any, field: str) -> None:
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 1})
    before = await api.snapshot()
    seen = await limits_seen(api)
    raw = b"null" if body is None else None
    status, reply = await api.request(
        "PUT", f"{QUOTAS}/scan", body, raw=raw, scopes=QUOTA_SCOPES,
        headers={REASON_HEADER: "r", "Content-Type": "application/json"},
    )  # fmt: skip
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert field in detail_fields(error)
    assert await api.snapshot() == before and await limits_seen(api) == seen


async def test_malformed_json_is_refused(api: Api) -> None:
    for path, method in ((f"{QUOTAS}/scan", "PUT"), (f"{SOURCES}/{HOST}", "PUT"),
                         (f"{SOURCES}/{HOST}/throttle", "POST"), (FAIRNESS, "PUT")):  # fmt: skip
        status, reply = await api.request(
            method, path, raw=b"{not json", scopes=QUOTA_SCOPES,
            headers={REASON_HEADER: "r", "Content-Type": "application/json"},
        )  # fmt: skip
        assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert await quota_views(api) == {}


def _window(start: Any, end: Any, **extra: Any) -> dict[str, Any]:
    return {"start": start, "end": end, **extra}


BAD_SOURCES: list[tuple[Any, str]] = [
    ({"rate": 0}, "rate"),
    ({"rate": -1}, "rate"),
    ({"rate": "1"}, "rate"),
    ({"rate": True}, "rate"),
    ({"rate": 1e7}, "rate"),
    ({"burst": 0}, "burst"),
    ({"burst": 2.5}, "burst"),
    ({"maxActive": -1}, "maxActive"),
    ({"paused": None}, "paused"),
    ({"hosts": []}, ""),
    ({"blackouts": "nightly"}, "blackouts"),
    ({"blackouts": [_window("soon", rfc3339(NOW_MS))]}, "blackouts[0].start"),
    ({"blackouts": [_window(rfc3339(NOW_MS), 12)]}, "blackouts[0].end"),
    ({"blackouts": [_window(rfc3339(NOW_MS), None)]}, "blackouts[0].end"),
    ({"blackouts": [_window("2027-01-15 08:00:00", rfc3339(NOW_MS))]}, "blackouts[0].start"),
    ({"blackouts": [_window(rfc3339(NOW_MS + 1), rfc3339(NOW_MS))]}, "blackouts[0].end"),
    ({"blackouts": [_window(rfc3339(NOW_MS), rfc3339(NOW_MS))]}, "blackouts[0].end"),
    ({"blackouts": [_window("24:00", "01:00", daily=True)]}, "blackouts[0].start"),
    ({"blackouts": [_window("8:00", "09:00", daily=True)]}, "blackouts[0].start"),
    ({"blackouts": [_window("08:00", "09:60", daily=True)]}, "blackouts[0].end"),
    ({"blackouts": [_window("\u00b2\u00b2:00", "09:00", daily=True)]}, "blackouts[0].start"),
    ({"blackouts": [_window(rfc3339(NOW_MS), rfc3339(NOW_MS + 1), daily=True)]},
     "blackouts[0].start"),
    ({"blackouts": [_window("08:00", "09:00", daily="yes")]}, "blackouts[0].daily"),
    ({"blackouts": [_window("08:00", "09:00", daily=True, tz="CET")]}, "blackouts[0]"),
    ({"blackouts": [_window("08:00", "09:00", daily=True)] * 101}, "blackouts"),
    ({"blackouts": [None]}, "blackouts[0]"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD_SOURCES)
async def test_bad_sources_are_refused(api: Api, body: Any, field: str) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 3})
    before = await api.snapshot()
    seen = await limits_seen(api)
    status, reply = await api.request(
        "PUT", f"{SOURCES}/{HOST}", body, scopes=QUOTA_SCOPES, headers={REASON_HEADER: "r"}
    )
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert field in detail_fields(error)
    assert await api.snapshot() == before and await limits_seen(api) == seen


@pytest.mark.parametrize(
    "body",
    [
        {"rate": 0.5},
        {"seconds": 10},
        {"rate": 0.5, "seconds": 0},
        {"rate": 0.5, "seconds": 7 * 86_400 + 1},
        {"rate": 0, "seconds": 10},
        {"rate": 0.5, "seconds": "10"},
        {"rate": 0.5, "seconds": 10, "until": "later"},
        {},
        [],
    ],
)
async def test_bad_throttles_are_refused(api: Api, body: Any) -> None:
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 3})
    seen = await limits_seen(api)
    status, reply = await api.request(
        "POST", f"{SOURCES}/{HOST}/throttle", body, scopes=QUOTA_SCOPES,
        headers={REASON_HEADER: "r"},
    )  # fmt: skip
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    detail_fields(error)
    assert await limits_seen(api) == seen


@pytest.mark.parametrize(
    "body", [{"weight": 0}, {"weight": 1001}, {"weight": "3"}, {"weight": 2.5},
             {"weight": True}, {}, {"weight": 3, "extra": 1}, [3]],
)  # fmt: skip
async def test_bad_weights_are_refused(api: Api, body: Any) -> None:
    status, reply = await api.request(
        "PUT", FAIRNESS, body, scopes=QUOTA_SCOPES, headers={REASON_HEADER: "r"}
    )
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    detail_fields(error)
    assert await audit_entries(api) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", f"{QUOTAS}/Scan", {"maxActive": 1}, "jobType"),
        ("PUT", f"{QUOTAS}/a%20b", {"maxActive": 1}, "jobType"),
        ("PUT", f"{QUOTAS}/{'a' * 129}", {"maxActive": 1}, "jobType"),
        ("POST", f"{QUOTAS}/sc@n/pause", None, "jobType"),
        ("DELETE", f"{QUOTAS}/SCAN", None, "jobType"),
        ("PUT", f"{SOURCES}/{'h' * 254}", {"rate": 1}, "host"),
        ("POST", f"{SOURCES}/{'h' * 254}/pause", None, "host"),
        ("GET", f"{SOURCES}/{'h' * 254}", None, "host"),
    ],
)
async def test_bad_names_in_the_path(
    api: Api, method: str, path: str, body: Any, field: str
) -> None:
    status, reply = await api.request(
        method, path, body, scopes=QUOTA_SCOPES, headers={REASON_HEADER: "r"}
    )
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert field in detail_fields(error)
    assert await quota_views(api) == {} and await audit_entries(api) == []


async def test_removing_what_does_not_exist_is_not_found(api: Api) -> None:
    for path in (f"{QUOTAS}/scan", f"{SOURCES}/{HOST}"):
        status, reply = await api.request(
            "DELETE", path, scopes=QUOTA_SCOPES, headers={REASON_HEADER: "r"}
        )
        assert_envelope(status, reply, "NOT_FOUND", 404)
    # another tenant's limits are not this tenant's
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 1}, tenant=OTHER)
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 1}, tenant=OTHER)
    status, reply = await api.request(
        "DELETE", f"{QUOTAS}/scan", scopes=QUOTA_SCOPES, headers={REASON_HEADER: "r"}
    )
    assert_envelope(status, reply, "NOT_FOUND", 404)
    status, reply = await api.get(f"{SOURCES}/{HOST}", scopes="orch:read")
    assert_envelope(status, reply, "NOT_FOUND", 404)
    assert await quota_views(api) == {} and await audit_entries(api) == []


async def test_limits_are_per_tenant(api: Api) -> None:
    await operate(api, "POST", f"{QUOTAS}/scan/pause")
    await operate(api, "POST", f"{SOURCES}/{HOST}/pause")
    await api.submit(job(), fetch(), tenant=OTHER)
    assert len(await api.claim(["scan", "fetch"], 10, tenant=OTHER)) == 2


# -- 8. backpressure ---------------------------------------------------------------------------
async def submit_raw(api: Api, n: int, tenant: str = TENANT) -> tuple[int, Any, dict[str, str]]:
    async with api.client.post(
        SUBMIT, json={"jobs": [job() for _ in range(n)]}, headers=api.headers(tenant)
    ) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_live_jobs_per_tenant_are_limited(make_api: MakeApi) -> None:
    api = await make_api(service=ServiceSettings(max_live_per_tenant=5))
    await api.submit(*[job() for _ in range(4)])
    before = await api.snapshot()
    status, body, headers = await submit_raw(api, 2)  # all or nothing
    assert_envelope(status, body, "RATE_LIMITED", 429)
    assert headers["Retry-After"].isdigit() and int(headers["Retry-After"]) >= 1
    assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == "1"
    assert headers["X-RateLimit-Reset"].isdigit()
    assert await api.snapshot() == before
    await api.submit(job())  # the fifth fits
    before = await api.snapshot()
    status, body, headers = await submit_raw(api, 1)
    assert_envelope(status, body, "RATE_LIMITED", 429)
    assert headers["X-RateLimit-Remaining"] == "0" and headers["Retry-After"].isdigit()
    assert await api.snapshot() == before
    await api.submit(*[job() for _ in range(5)], tenant=OTHER)  # another tenant's own five
    [leased] = await api.claim(["scan"], 1)  # leased is still live
    status, _, _ = await submit_raw(api, 1)
    assert status == 429
    await api.ack(done(leased))
    assert len(await api.submit(job())) == 1


async def test_live_jobs_in_all_are_limited(make_api: MakeApi) -> None:
    api = await make_api(service=ServiceSettings(max_live=5))
    await api.submit(*[job() for _ in range(3)])
    await api.submit(job(), tenant=OTHER)
    before = await api.snapshot()
    status, body, headers = await submit_raw(api, 2, tenant=OTHER)
    assert_envelope(status, body, "RATE_LIMITED", 429)
    assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == "1"
    assert headers["Retry-After"].isdigit() and headers["X-RateLimit-Reset"].isdigit()
    assert await api.snapshot() == before
    await api.submit(job(), tenant=OTHER)
    status, body, _ = await submit_raw(api, 1)
    assert_envelope(status, body, "RATE_LIMITED", 429)


# -- 9. manual retry -------------------------------------------------------------------------
async def test_a_dead_job_is_retried_in_place(api: Api) -> None:
    created = await dead_job(api)
    path = f"{BASE}/jobs/{created['jobId']}/retry"
    status, body = await api.post(path, scopes="orch:operate")
    error = assert_envelope(status, body, "VALIDATION_FAILED", 400)
    assert REASON_HEADER in detail_fields(error)
    assert (await api.read(created["jobId"]))["state"] == "dead"
    status, body = await api.post(path, tenant=OTHER, headers={REASON_HEADER: "r"})
    assert_envelope(status, body, "NOT_FOUND", 404)
    assert (await api.read(created["jobId"]))["state"] == "dead"
    reply = await operate(api, "POST", path, scopes="orch:operate")
    assert reply == {"jobId": created["jobId"], "state": "ready"}
    view = await api.read(created["jobId"])
    assert view["state"] == "ready"
    [again] = await api.claim(["once"], 5)
    assert again["jobId"] == created["jobId"] and again["attempt"] == 1
    assert again["maxAttempts"] == 1
    [acked] = await api.ack(done(again))
    assert acked["state"] == "succeeded"
    status, body = await api.post(path, headers={REASON_HEADER: "r"})
    assert_envelope(status, body, "ILLEGAL_TRANSITION", 409)  # succeeded is final


async def test_retrying_an_unknown_job_is_not_found(api: Api) -> None:
    for text in ("not-a-job", "0190a4f2-8a6b-7c3d-9e4f-0a1b2c3d4e5f"):
        status, body = await api.post(f"{BASE}/jobs/{text}/retry", headers={REASON_HEADER: "r"})
        assert_envelope(status, body, "NOT_FOUND", 404)
    assert await audit_entries(api) == []


async def test_retrying_a_live_job_is_a_conflict(api: Api) -> None:
    [created] = await api.submit(job())
    before = await api.snapshot()
    status, body = await api.post(
        f"{BASE}/jobs/{created['jobId']}/retry", headers={REASON_HEADER: "r"}
    )
    assert_envelope(status, body, "ILLEGAL_TRANSITION", 409)
    assert await api.snapshot() == before


async def test_retry_checks_the_whole_job_id(api: Api) -> None:
    created = await dead_job(api)
    real = created["jobId"]
    forged = ("1" if real[0] != "1" else "2") + real[1:]
    status, body = await api.post(f"{BASE}/jobs/{forged}/retry", headers={REASON_HEADER: "r"})
    assert_envelope(status, body, "NOT_FOUND", 404)
    assert (await api.read(real))["state"] == "dead"


# -- 10. restart -----------------------------------------------------------------------------
async def test_limits_survive_a_restart(api: Api, aiohttp_client: Any) -> None:
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 2, "perHour": 100, "burst": 5})
    await operate(api, "POST", f"{QUOTAS}/held/pause")
    window = {"start": rfc3339(NOW_MS + 3_600_000), "end": rfc3339(NOW_MS + 7_200_000)}
    daily = {"start": "23:30", "end": "00:30", "daily": True}
    await operate(
        api, "PUT", f"{SOURCES}/{HOST}",
        {"rate": 2.5, "burst": 4, "maxActive": 3, "blackouts": [window, daily]},
    )  # fmt: skip
    await operate(api, "POST", f"{SOURCES}/{HOST}/throttle", {"rate": 1, "seconds": 600})
    await operate(api, "POST", f"{SOURCES}/paused.example/pause")
    await operate(api, "PUT", FAIRNESS, {"weight": 7})
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 9}, tenant=OTHER)
    quotas = api.broker.quotas_of(TENANT)
    sources = api.broker.sources_of(TENANT)
    assert quotas == [
        ("held", Quota(paused=True)),
        ("scan", Quota(max_active=2, per_hour=100, burst=5)),
    ]
    assert sources[0][0] == HOST and sources[0][1].blackouts == (
        Blackout(NOW_MS + 3_600_000, NOW_MS + 7_200_000),
        Blackout(23 * 3_600_000 + 30 * 60_000, 30 * 60_000, daily=True),
    )
    assert sources[0][1].throttle_until == NOW_MS + 600_000
    assert sources[1] == ("paused.example", Source(paused=True))
    views = await limits_seen(api)

    await api.broker.stop()
    broker = Broker(api.ledger, ServiceSettings(), api.clock)
    await broker.start()
    try:
        assert broker.quotas_of(TENANT) == quotas
        assert broker.sources_of(TENANT) == sources
        assert broker.quotas_of(OTHER) == [("scan", Quota(max_active=9))]
        engine = broker.engine
        assert engine.ready.weight(engine.tenants.find(TENANT)) == 7
        app = make_app(broker, Authenticator(api.keys), ApiSettings())
        again = Api(await aiohttp_client(app), app, broker, api.clock, api.ledger, api.keys)
        assert await limits_seen(again) == views
        # and they are in force
        await again.submit(job("held"), *[job() for _ in range(3)])
        assert await again.claim(["held"]) == []
        assert len(await again.claim(["scan"])) == 2
    finally:
        await broker.stop()


async def test_slots_in_use_are_counted_again_after_a_restart(
    api: Api, aiohttp_client: Any
) -> None:
    await operate(api, "PUT", f"{QUOTAS}/scan", {"maxActive": 2})
    await api.submit(*[job() for _ in range(4)])
    assert len(await api.claim(["scan"], 10, leaseSeconds=LEASE_S)) == 2
    async with restarted(api, aiohttp_client) as again:
        assert (await quota_views(again))["scan"]["inFlight"] == 2
        assert await again.claim(["scan"], 10) == []


# -- 11. fairness weight -----------------------------------------------------------------------
async def test_fairness_weight_is_set_and_audited(api: Api) -> None:
    reply = await operate(api, "PUT", FAIRNESS, {"weight": 3}, ticket="CHG-9", subject="bob")
    assert reply == {"tenant": TENANT, "weight": 3}
    engine = api.broker.engine
    assert engine.ready.weight(engine.tenants.find(TENANT)) == 3
    [entry] = await audit_entries(api)
    assert entry["action"] == "fairness.weight" and entry["actor"] == "bob"
    assert entry["ticket"] == "CHG-9" and entry["reason"] == "load shedding, INC-7"
    for weight in (1, 1000):
        await operate(api, "PUT", FAIRNESS, {"weight": weight})
    assert engine.ready.weight(engine.tenants.find(TENANT)) == 1000
    assert engine.ready.weight(engine.tenants.id(OTHER)) == 1


async def test_a_slowed_source_stays_slowed_after_a_restart(api: Api, aiohttp_client: Any) -> None:
    """A 429's cut rate, pause and penalty count are kept in the ledger: a restart
    does not hammer an upstream that just said "too many"."""
    await operate(api, "PUT", f"{SOURCES}/{HOST}", {"rate": 10, "burst": 10})
    await api.submit(*[fetch() for _ in range(3)])
    claimed = await take(api, 3)
    too_many = {"class": "http_429", "retryable": True, "retryAfterSeconds": 30}
    await api.ack(*[done(j, "failed", error=too_many) for j in claimed[:2]])
    slowed = await source_view(api)
    kept = {k: slowed[k] for k in ("rate", "configuredRate", "penalties", "penaltyUntil")}
    assert kept == {
        "rate": 6.4,  # 10 cut to 4/5, twice
        "configuredRate": 10.0,
        "penalties": 2,
        "penaltyUntil": rfc3339(NOW_MS + 30_000),
    }
    async with restarted(api, aiohttp_client) as again:
        view = await source_view(again)
        assert {k: view[k] for k in kept} == kept
