"""The worker bridge and submission on a lean HTTP/1.1 path, beside aiohttp.

A worker's ack-and-claim does less work in the broker than aiohttp does to carry
it: a parser message, a ``StreamReader`` for the body, the router, the middleware
chain, a response written through a ``StreamWriter``. So the four routes outside
clients hammer (``POST`` submit, claim, heartbeat, ack) are read here straight off
the transport: the head is split once, the body sliced out of the buffer, the
same handler and error envelope as aiohttp's path are called, and the answer goes
out in one write.

Only plain requests take this path: ``POST`` to one of those routes over
HTTP/1.1 with a ``Content-Length`` within the body limit and well-formed header
lines. Anything else (another route or method, a chunked body, ``Expect``,
``Upgrade``, HTTP/1.0, a line this parser is too strict to vouch for, a body over
the limit) hands the connection to aiohttp at the start of that request, its
bytes unread, so every other route, the event streams, aiohttp's parser and its
413 checks serve it exactly as they would without this module. A connection
never comes back from aiohttp. Requests pipelined on one connection are answered
in order, one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import Any, cast

from aiohttp import web

from .._native import Wire

Handler = Callable[[Any], Awaitable[web.StreamResponse]]
Dispatch = Callable[[Any, Handler], Awaitable[web.StreamResponse]]

MAX_HEAD = 16 * 1024  # a longer head goes to aiohttp (which limits each line, not the sum)
MAX_PIPELINED = 16  # parsed requests waiting on one connection before reading pauses
SMALL_BODY = 64 * 1024  # an answer shorter than this goes out as one joined buffer
# an idle connection is closed after this; so is one whose request's head has not
# arrived whole this long after the last answer, or whose body has stopped coming
KEEPALIVE_S = 75.0
_REASONS = {200: "OK", 201: "Created"}
_WIRE = Wire()  # reads request heads (its twin, wire_py.Wire.request_head, says how)


class Headers:
    """Case-insensitive ``get`` over a head's fields, decoded like aiohttp's."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, bytes]) -> None:
        self._fields = fields

    def get(self, name: str, default: Any = None) -> Any:
        value = self._fields.get(name.lower())
        return default if value is None else value.decode("utf-8", "surrogateescape")


class LeanRequest(dict[Any, Any]):
    """The part of ``web.Request`` the worker handlers use; a dict for per-request
    state (the trace id), like aiohttp's request."""

    __slots__ = ("path", "headers", "content_length", "transport", "_body")
    method = "POST"

    def __init__(
        self, path: str, fields: dict[str, bytes], body: bytes, transport: asyncio.Transport
    ) -> None:
        super().__init__()
        self.path = path
        self.headers = Headers(fields)
        self.content_length = len(body)
        self.transport: asyncio.Transport | None = transport
        self._body = body

    async def read(self) -> bytes:
        return self._body


class _Date:
    """The ``Date`` header's value, made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode()
        return self._value


_DATE = _Date()


def response_head(response: web.Response, body: bytes, keep_alive: bool) -> bytes:
    """The status line and header lines of an HTTP/1.1 answer, blank line included."""
    status = response.status
    reason = _REASONS.get(status) or response.reason
    parts = [
        f"HTTP/1.1 {status} {reason}\r\n".encode(),
        b"Content-Length: %d\r\nDate: %s\r\nServer: orchestrator-broker\r\n"
        % (len(body), _DATE.now()),
    ]
    for name, value in response.headers.items():
        if name.lower() != "content-length":
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def send(transport: asyncio.Transport, response: web.StreamResponse, keep_alive: bool) -> None:
    """Write the whole answer: in one piece when small, else without copying the body."""
    assert isinstance(response, web.Response)
    body = response.body
    assert isinstance(body, bytes)
    head = response_head(response, body, keep_alive)
    if len(body) < SMALL_BODY:
        transport.write(head + body)
    else:
        transport.writelines((head, body))


class LeanConnection(asyncio.Protocol):
    """One client connection on the lean path, until it is handed to aiohttp."""

    def __init__(self, site: LeanPath) -> None:
        self.site = site
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.queue: deque[tuple[LeanRequest, Handler, bool]] = deque()
        self.task: asyncio.Task[None] | None = None  # serves the queue, in order
        self.parked: asyncio.Future[None] | None = None  # the task waits for a request
        self.hand_off = False  # the next request is aiohttp's: stop parsing
        self.closing = False  # answer what is queued, then close
        self.reading = True
        self.writable: asyncio.Future[None] | None = None  # set while writing is paused
        self.quiet_since = time.monotonic()  # when it last answered (or connected)
        self.swept_length = 0  # bytes buffered at the last sweep: a body still coming?
        self.awaited: tuple[int, Any] | None = None  # (head end, head) of a partial request

    # -- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.site.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.hand_off and not self.closing:
            self._parse()
        if self.transport is None:
            return  # handed to aiohttp (or closed) while parsing
        # nothing more is read until the queue is answered when an unread request waits
        # for aiohttp (or the close), or more than a head waits behind queued requests
        waiting = self.hand_off or self.closing or (self.queue and len(self.buffer) > MAX_HEAD)
        if waiting and self.reading:
            self._pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.site.connections.discard(self)
        self.transport = None
        if self.task is not None:
            self.task.cancel()  # a long poll for a client that left stops at once
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def _pause_reading(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()
        self.reading = False

    # -- requests -------------------------------------------------------------------
    def _parse(self) -> None:
        site = self.site
        while not self.closing:
            buffer = self.buffer
            if self.awaited:  # a head already read waits for the rest of its body
                end, head = self.awaited
            else:
                end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
                if end < 0:
                    if len(buffer) >= MAX_HEAD + 4:  # its end can no longer come in reach
                        self._hand_off_when_idle()
                    return
                head = _WIRE.request_head(bytes(buffer[:end]), site.routes, site.max_body)
                if head is None:
                    self._hand_off_when_idle()
                    return
            path, length, fields, keep_alive = head
            size = end + 4 + length
            if len(buffer) < size:
                self.awaited = end, head  # the body is still on its way: not read again
                return
            self.awaited = None
            assert self.transport is not None
            request = LeanRequest(path, fields, bytes(buffer[end + 4 : size]), self.transport)
            del buffer[:size]
            self.queue.append((request, site.handlers[path], keep_alive))
            if not keep_alive:
                self.closing = True
            self._start_serving()
            if len(self.queue) >= MAX_PIPELINED and self.reading:
                self._pause_reading()

    def _start_serving(self) -> None:
        """Wake the connection's task (one for its lifetime: cheaper than a task
        per request), or start it."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve())
        elif self.parked is not None:
            parked, self.parked = self.parked, None
            parked.set_result(None)

    @property
    def idle(self) -> bool:
        return self.task is None or self.parked is not None

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self.queue and self.transport is not None:
                    request, handler, keep_alive = self.queue.popleft()
                    if not self.reading:
                        self.transport.resume_reading()
                        self.reading = True
                    response = await self.site.dispatch(request, handler)
                    if self.writable is not None:
                        await self.writable
                    if self.transport is None:
                        return
                    send(self.transport, response, keep_alive)
                    if not keep_alive:
                        self.transport.close()
                        return
                if self.transport is None:
                    return
                if self.hand_off:
                    self._hand_off()
                    return
                if self.closing:
                    self.transport.close()
                    return
                self.quiet_since = time.monotonic()
                self.parked = loop.create_future()
                await self.parked
        finally:
            self.task = None
            self.parked = None

    def _hand_off_when_idle(self) -> None:
        self.hand_off = True
        if self.task is None:
            self._hand_off()
        else:
            self._start_serving()  # a parked task wakes and hands the connection off

    def _hand_off(self) -> None:
        """From here on aiohttp serves this connection, starting with what is unread."""
        transport = self.transport
        assert transport is not None
        self.site.connections.discard(self)
        protocol = self.site.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.writable is not None:
            protocol.pause_writing()  # the transport will tell it when to resume
        if not self.reading:
            transport.resume_reading()
        if self.buffer:
            protocol.data_received(bytes(self.buffer))
        self.buffer.clear()
        self.transport = None

    def close_if_idle(self, since: float, now: float) -> None:
        """Close when quiet since ``since`` or before: nothing asked since its last
        answer, or a request on its way since a sweep first saw it begin with its
        head still incomplete (a head is small), or its body no longer growing (a
        large one may take long, as long as it keeps coming)."""
        if not self.idle or self.transport is None:
            return
        buffered = len(self.buffer)
        if buffered != self.swept_length:
            if self.awaited is not None or not self.swept_length:
                self.quiet_since = now  # a body still arriving, or a request just begun
            self.swept_length = buffered
        if self.quiet_since <= since:
            self.transport.close()

    def shut(self) -> None:
        """Stop taking requests; close once what is queued has been answered."""
        self.closing = True
        if self.task is None:
            if self.transport is not None:
                self.transport.close()
        else:
            self._start_serving()  # a parked task wakes and closes the connection


class LeanPath(web.BaseSite):
    """An aiohttp site whose connections start on the lean path.

    ``routes`` maps request targets to handlers (each taking a ``LeanRequest``),
    ``dispatch(request, handler)`` runs one (the app's error-envelope middleware);
    everything else is the runner's aiohttp server's."""

    __slots__ = (
        "routes", "handlers", "dispatch", "max_body", "keepalive_s", "connections", "_address",
        "_sweeper",
    )  # fmt: skip

    def __init__(
        self,
        runner: web.BaseRunner,
        routes: Mapping[str, Handler],
        dispatch: Dispatch,
        max_body: int,
        *,
        host: str | None = None,
        port: int = 0,
        sock: Any = None,
        backlog: int = 1024,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._address: dict[str, Any] = {"sock": sock} if sock else {"host": host, "port": port}
        self.handlers = dict(routes)
        self.routes = frozenset(path.encode() for path in routes)  # what request_head takes
        self.dispatch = dispatch
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.connections: set[LeanConnection] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def host(self) -> str:
        return str(self.sockets()[0].getsockname()[0])

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose, when asked for port 0)."""
        return int(self.sockets()[0].getsockname()[1])

    def sockets(self) -> list[Any]:
        server = self._server
        assert server is not None, "not started"
        return list(server.sockets)  # type: ignore[attr-defined]

    def fallback(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        return server()

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: LeanConnection(self), backlog=self._backlog, **self._address
        )
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close connections idle for ``keepalive_s``: one pass every few seconds
        instead of a timer set again on every request."""
        every = max(self.keepalive_s / 8, 0.05)
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            since = now - self.keepalive_s
            for connection in list(self.connections):
                connection.close_if_idle(since, now)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop listening; answer what each connection has queued (for at most
        ``timeout_s``), then close it."""
        await super().stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.connections):
            connection.shut()
        deadline = time.monotonic() + timeout_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
