"""The lean HTTP path in front of aiohttp, spoken to over raw sockets.

Plain requests to submission and the worker routes are answered by the lean
path (its ``Server`` header says so); everything else is handed to aiohttp on the
same connection, at the start of that request, and answered as aiohttp always
did. Pipelined requests are answered in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from broker.api.app import ApiSettings, lean_site
from broker.api.fast_http import LeanPath

from .conftest import ACK, CLAIM, SUBMIT, Api, MakeApi, job

LEAN_SERVER = b"orchestrator-broker"


@pytest.fixture
def http_path() -> str:
    return "aiohttp"  # these tests bring their own lean site


@pytest.fixture
async def lean(make_api: MakeApi) -> AsyncIterator[tuple[Api, LeanPath]]:
    api = await make_api(ApiSettings(max_body_bytes=4_000))
    runner = web.AppRunner(api.app, handler_cancellation=True)
    await runner.setup()
    site = lean_site(runner, host="127.0.0.1", port=0, keepalive_s=0.3)
    await site.start()
    yield api, site
    await runner.cleanup()


class Conn:
    """A raw HTTP/1.1 connection that reads whole responses back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, site: LeanPath) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", site.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], Any]:
        status_line = await asyncio.wait_for(self.reader.readline(), 5)
        assert status_line, "connection closed"
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readline()).strip(), 16):
                body += await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        try:
            return status, headers, json.loads(body) if body else None
        except ValueError:
            return status, headers, body  # aiohttp's own refusal of a malformed message

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    def close(self) -> None:
        self.writer.close()


def post(api: Api, path: str, body: bytes, *extra: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: test",
        f"Authorization: Bearer {api.token()}",
        "Content-Type: application/json",
        *extra,
    ]
    if not any(e.lower().startswith(("content-length", "transfer-encoding")) for e in extra):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def submission(n: int = 1) -> bytes:
    return json.dumps({"jobs": [job(payload={"i": i}) for i in range(n)]}).encode()


async def test_worker_routes_take_the_lean_path_and_the_rest_aiohttp(
    lean: tuple[Api, LeanPath],
) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(post(api, SUBMIT, submission()))
    status, headers, body = await conn.response()
    assert status == 201 and headers["server"] == LEAN_SERVER.decode(), (status, headers)
    assert body["jobs"][0]["state"] == "ready"
    # the same connection, another route: aiohttp answers it, and the next one too
    await conn.send(f"GET {SUBMIT}/{body['jobs'][0]['jobId']} HTTP/1.1\r\nHost: t\r\n"
                    f"Authorization: Bearer {api.token()}\r\n\r\n".encode())  # fmt: skip
    status, headers, read = await conn.response()
    assert status == 200 and "aiohttp" in headers["server"], headers
    assert read["payload"] == {"i": 0}
    await conn.send(post(api, CLAIM, b'{"workerId": "w", "jobTypes": ["scan"], "maxJobs": 5}'))
    status, _, claimed = await conn.response()
    assert status == 200 and len(claimed["jobs"]) == 1
    conn.close()


async def test_pipelined_requests_are_answered_in_order(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    conn = await Conn.open(site)
    claim = b'{"workerId": "w", "jobTypes": ["scan"], "maxJobs": 10}'
    await conn.send(
        post(api, SUBMIT, submission(2))
        + post(api, CLAIM, claim)
        + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        + post(api, SUBMIT, submission(1))
    )
    replies = [await conn.response() for _ in range(4)]
    assert [r[0] for r in replies] == [201, 200, 200, 201]
    assert len(replies[1][2]["jobs"]) == 2 and replies[2][2] == {"status": "ok"}
    # after the hand-off aiohttp answered the last one, a lean route
    assert "aiohttp" in replies[3][1]["server"]
    conn.close()


async def test_a_body_sent_byte_by_byte_is_read_whole(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    conn = await Conn.open(site)
    for byte in post(api, SUBMIT, submission(3)):
        await conn.send(bytes([byte]))
    status, headers, body = await conn.response()
    assert status == 201 and len(body["jobs"]) == 3
    assert headers["server"] == LEAN_SERVER.decode()
    conn.close()


@pytest.mark.parametrize(
    "extra",
    [
        ("Transfer-Encoding: chunked",),
        ("Expect: 100-continue",),
        ("X-Note: folded", " continued"),  # obs-fold: aiohttp refuses it
        ("Content-Length : 5",),  # a space before the colon: refused
        ("Content-Length: 5", "Content-Length: 5"),  # two lengths: refused
        ("Content-Length: 99999",),  # over max_body_bytes: 413
        ("X-Note: a\x01b",),  # a control character in a value: refused
        ("X-Note: a\x00b",),
    ],
    ids=[
        "chunked",
        "expect",
        "obs-fold",
        "space-before-colon",
        "two-lengths",
        "too-large",
        "control-char",
        "nul",
    ],  # fmt: skip
)
async def test_what_the_lean_path_does_not_vouch_for_goes_to_aiohttp(
    lean: tuple[Api, LeanPath], extra: tuple[str, ...]
) -> None:
    api, site = lean
    before = await api.snapshot()
    conn = await Conn.open(site)
    body = submission()
    if extra[0].startswith("Transfer-Encoding"):
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    elif extra[0].startswith("Expect"):
        extra = (*extra, f"Content-Length: {len(body)}")
    await conn.send(post(api, SUBMIT, body, *extra))
    status, headers, reply = await conn.response()
    if status == 100:
        status, headers, reply = await conn.response()
    assert "aiohttp" in headers.get("server", "aiohttp"), headers
    if extra[0].startswith(("Transfer-Encoding", "Expect")):
        assert status == 201, reply
        assert len(reply["jobs"]) == 1
    else:
        assert status in (400, 413), (status, reply)
        assert await api.snapshot() == before
    conn.close()


async def test_a_head_over_the_limit_goes_to_aiohttp_even_in_one_piece(
    lean: tuple[Api, LeanPath],
) -> None:
    api, site = lean
    conn = await Conn.open(site)
    filler = [f"X-Filler-{i}: {'x' * 1000}" for i in range(20)]  # 20 KiB of head
    await conn.send(post(api, SUBMIT, submission(), *filler))
    status, headers, reply = await conn.response()  # aiohttp limits each line, not the sum
    assert "aiohttp" in headers["server"] and status == 201, (status, reply)
    conn.close()


async def test_http_1_0_goes_to_aiohttp(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(post(api, SUBMIT, submission()).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    status, headers, body = await conn.response()
    assert status == 201 and "aiohttp" in headers["server"]
    assert len(body["jobs"]) == 1
    conn.close()


async def test_connection_close_is_honoured(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(post(api, SUBMIT, submission(), "Connection: close"))
    status, headers, _ = await conn.response()
    assert status == 201 and headers["connection"] == "close"
    assert await conn.closed()


async def test_errors_keep_the_envelope_and_the_connection(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(
        post(api, ACK, b"{not json", "traceparent: 00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
    )
    status, headers, body = await conn.response()
    assert status == 400 and headers["server"] == LEAN_SERVER.decode()
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["traceId"] == "ab" * 16
    await conn.send(post(api, SUBMIT, submission()).replace(api.token().encode(), b"nope"))
    status, _, body = await conn.response()
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    await conn.send(post(api, SUBMIT, submission()))
    assert (await conn.response())[0] == 201
    conn.close()


async def test_an_idle_connection_is_closed_after_the_keepalive(
    lean: tuple[Api, LeanPath],
) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(post(api, SUBMIT, submission()))
    assert (await conn.response())[0] == 201
    assert await conn.closed()  # keepalive_s=0.3 in this fixture
    assert not site.connections


async def test_a_head_that_never_ends_is_closed_after_the_keepalive(
    lean: tuple[Api, LeanPath],
) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(post(api, SUBMIT, submission())[:40])  # a head cut short, then silence
    assert await conn.closed()
    assert not site.connections


async def test_a_body_is_waited_for_while_it_keeps_coming(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    request = post(api, SUBMIT, submission(20))
    head_end = request.index(b"\r\n\r\n") + 4
    slow = await Conn.open(site)
    await slow.send(request[:head_end])
    for byte in request[head_end:]:  # slower in all than the 0.3 s keep-alive, never idle
        await slow.send(bytes([byte]))
        await asyncio.sleep(0.002)
    status, _, body = await slow.response()
    assert status == 201 and len(body["jobs"]) == 20
    stalled = await Conn.open(site)
    await stalled.send(request[: head_end + 10])  # then the body stops coming
    assert await stalled.closed()
    slow.close()


async def test_a_long_poll_stops_when_its_client_leaves(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    conn = await Conn.open(site)
    await conn.send(
        post(api, CLAIM, b'{"workerId": "w", "jobTypes": ["scan"], "maxJobs": 1, "waitMs": 20000}')
    )
    await asyncio.sleep(0.05)
    (connection,) = site.connections
    assert connection.task is not None and not connection.idle
    conn.writer.transport.abort()
    for _ in range(100):
        if not site.connections:
            break
        await asyncio.sleep(0.01)
    assert not site.connections
    # the job submitted now goes to a worker still there, not to the one that left
    await api.submit(job())
    assert len(await api.claim()) == 1


async def test_stopping_answers_what_is_in_flight_and_closes_idle_connections(
    lean: tuple[Api, LeanPath],
) -> None:
    api, site = lean
    idle = await Conn.open(site)
    await idle.send(post(api, SUBMIT, submission()))
    assert (await idle.response())[0] == 201
    busy = await Conn.open(site)
    poll = b'{"workerId": "w", "jobTypes": ["none"], "maxJobs": 1, "waitMs": 300}'
    await busy.send(post(api, CLAIM, poll))
    while all(c.idle for c in site.connections):
        await asyncio.sleep(0.01)
    await site.stop()
    status, _, body = await busy.response()  # the long poll ran its course
    assert status == 200 and body == {"jobs": []}
    assert await idle.closed() and await busy.closed()


async def test_a_large_answer_goes_out_whole(lean: tuple[Api, LeanPath]) -> None:
    api, site = lean
    big = {"blob": "x" * 3_000}  # under the fixture's 4,000-byte body limit
    conn = await Conn.open(site)
    for _ in range(30):
        await conn.send(post(api, SUBMIT, json.dumps({"jobs": [job(payload=big)]}).encode()))
        assert (await conn.response())[0] == 201
    claim = b'{"workerId": "w", "jobTypes": ["scan"], "maxJobs": 30}'
    await conn.send(post(api, CLAIM, claim))
    status, headers, body = await conn.response()  # over 64 KiB: head and body written apart
    assert status == 200 and int(headers["content-length"]) > 64 * 1024
    assert [j["payload"] for j in body["jobs"]] == [big] * 30
    conn.close()


async def test_reading_pauses_while_a_request_is_in_flight_and_more_waits(
    lean: tuple[Api, LeanPath],
) -> None:
    api, site = lean
    conn = await Conn.open(site)
    poll = b'{"workerId": "w", "jobTypes": ["none"], "maxJobs": 1, "waitMs": 300}'
    await conn.send(post(api, CLAIM, poll) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.writer.write(b"x" * 1_000_000)  # junk behind a request aiohttp is to answer
    await asyncio.sleep(0.1)
    (connection,) = site.connections
    assert not connection.reading and len(connection.buffer) < 1_000_000
    assert (await conn.response())[0] == 200  # the long poll, answered in order
    conn.close()
