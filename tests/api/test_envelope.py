"""The error envelope: unknown routes, wrong methods, trace ids, and no 500 on bad input."""

from __future__ import annotations

import re

import pytest

from .conftest import ACK, BASE, CLAIM, HEARTBEAT, SUBMIT, Api, assert_envelope, job

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize("path", ["/nope", f"{BASE}/nope", f"{BASE}/jobs/a/b", "/api/v2/x"])
async def test_unknown_route(api: Api, path: str) -> None:
    status, body = await api.get(path)
    assert_envelope(status, body, "NOT_FOUND", 404)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", SUBMIT),
        ("DELETE", SUBMIT),
        ("GET", CLAIM),
        ("PUT", ACK),
        ("GET", HEARTBEAT),
        ("POST", f"{SUBMIT}/0190a0b0-0000-7000-8000-000000000001"),
        ("POST", "/healthz"),
        ("POST", "/metrics"),
    ],
)
async def test_wrong_method(api: Api, method: str, path: str) -> None:
    async with api.client.request(method, path, headers=api.headers()) as resp:
        body = await resp.json()
        assert_envelope(resp.status, body, "METHOD_NOT_ALLOWED", 405)
        assert resp.headers.get("Allow")


async def test_errors_are_json(api: Api) -> None:
    async with api.client.post(SUBMIT, data=b"{", headers=api.headers()) as resp:
        assert resp.status == 400 and resp.content_type == "application/json"


@pytest.mark.parametrize(
    "method,path,body,auth,status",
    [
        ("POST", SUBMIT, {"jobs": []}, True, 400),
        ("POST", SUBMIT, {"jobs": [job()]}, False, 401),
        ("POST", CLAIM, {"workerId": "w", "jobTypes": ["scan"]}, False, 401),
        ("GET", f"{SUBMIT}/nope", None, True, 404),
        ("GET", "/missing", None, False, 404),
        ("DELETE", SUBMIT, None, True, 405),
    ],
    ids=["400", "401-submit", "401-claim", "404-job", "404-route", "405"],
)
async def test_traceparent_is_echoed(
    api: Api, method: str, path: str, body: object, auth: bool, status: int
) -> None:
    got, reply = await api.request(
        method, path, body, auth=auth, headers={"traceparent": TRACEPARENT}
    )
    error = assert_envelope(got, reply, reply["error"]["code"], status)
    assert error["traceId"] == TRACE


@pytest.mark.parametrize(
    "traceparent",
    [
        None,
        "garbage",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        "00-xyz-00f067aa0ba902b7-01",
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
    ],
    ids=["absent", "garbage", "all-zero", "not-hex", "short"],
)
async def test_fresh_trace_id_without_a_valid_traceparent(
    api: Api, traceparent: str | None
) -> None:
    headers = {} if traceparent is None else {"traceparent": traceparent}
    status, reply = await api.post(SUBMIT, {"jobs": []}, headers=headers)
    error = assert_envelope(status, reply, "VALIDATION_FAILED", 400)
    assert re.fullmatch(r"[0-9a-f]{32}", error["traceId"]) and error["traceId"] != "0" * 32


async def test_trace_ids_differ_between_requests(api: Api) -> None:
    ids = set()
    for _ in range(3):
        _, reply = await api.post(SUBMIT, {"jobs": []})
        ids.add(reply["error"]["traceId"])
    assert len(ids) == 3


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b"1e999",
        b'{"a": 18446744073709551616}',
        b"[" * 5000,
        b'"\\ud800"',
        b'{"jobs": [' + b'{"jobType": "scan", "payload": 1},' * 3 + b"]}",
    ],
    ids=[
        "empty",
        "brace",
        "list",
        "null",
        "huge-float",
        "huge-int",
        "deep",
        "lone-surrogate",
        "trailing-comma",
    ],
)
async def test_bad_input_is_never_500(api: Api, raw: bytes) -> None:
    before = await api.snapshot()
    for path in (SUBMIT, CLAIM, HEARTBEAT, ACK):
        status, reply = await api.post(path, raw=raw, headers={"Content-Type": "application/json"})
        assert 400 <= status < 500, (path, status, reply)
        assert_envelope(status, reply, reply["error"]["code"], status)
    assert await api.snapshot() == before
