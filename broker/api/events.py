"""``GET /events``: the tenant's broker events as Server-Sent Events.

One event per committed fact (see ``broker/service/events.py``): ``incident``
(a circuit breaker opened), ``operator`` (an audited operator action), ``run``
(a run's new status). Each is written as

    id: 42
    event: incident
    data: {"at": "...", "actor": "broker", "action": "breaker.opened", ...}

A comment line (``: keep-alive``) goes out every ``KEEP_ALIVE_S`` while nothing
happens, so proxies and clients see the stream is alive. A client reconnecting
with ``Last-Event-ID`` first gets the events it missed, if the broker still
holds them; the first line of every stream, ``: resumed`` or ``: from-now``,
says which. When a subscriber falls too far behind, its stream ends and it
reconnects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ..errors import ValidationFailed
from ..service.events import Event
from .timefmt import rfc3339

if TYPE_CHECKING:
    from .app import Api

KEEP_ALIVE_S = 15.0


def last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²" is a digit too
        raise ValidationFailed(
            "Last-Event-ID must be the id of an event this stream sent",
            details=[{"field": "Last-Event-ID", "problem": "must be a non-negative integer"}],
        )
    return int(raw)


def frame(event: Event) -> bytes:
    data = orjson.dumps({"at": rfc3339(event.at), **event.fields})
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.kind.encode(), data)


class EventRoutes:
    def __init__(self, api: Api, keep_alive_s: float = KEEP_ALIVE_S) -> None:
        self.api = api
        self.keep_alive_s = keep_alive_s

    def register(self, app: web.Application, base: str) -> None:
        app.router.add_get(f"{base}/events", self.stream, allow_head=False)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        tenant = self.api.principal(request).require("orch:read", "orch:operate")
        last = last_event_id(request)
        sub = self.api.broker.events.subscribe(tenant, last)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events on as they come
            }
        )
        try:
            await response.prepare(request)
            await response.write(b": resumed\n\n" if sub.resumed else b": from-now\n\n")
            while True:
                try:
                    event = await sub.next(self.keep_alive_s)
                except EOFError:
                    break
                await response.write(frame(event) if event else b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the client went away
        finally:
            sub.close()
        return response
