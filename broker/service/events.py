"""Broker events for live subscribers (the SSE stream), per tenant.

Events are made from what a flush has just committed, never before: an
operator's action or a broker incident (a circuit breaker that opened) from
the audit rows, a run's new status from the run rows. So a subscriber never
hears of something a crash could still take back, and the hot path (claims,
acks) publishes nothing per job.

Event ids grow across restarts: they start at the broker's boot epoch shifted
left by 40 bits (``begin``), so an id from an earlier process is always below
every id of this one. The newest ``ring`` events are kept, so a client that
reconnects with ``Last-Event-ID`` gets what it missed if it was away only
briefly; otherwise (away too long, or since a restart) it starts from now,
and its ``resumed`` flag says whether nothing was lost. A subscriber that falls
``queue`` events behind is cut off rather than buffered without bound; it
reconnects and resumes from the ring.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..store import AuditRow, FlushBatch, RunRow

INCIDENT_ACTIONS = frozenset({"breaker.opened"})
EPOCH_SHIFT = 40  # event ids: boot epoch above, this boot's count below


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    tenant: str
    kind: str  # "incident", "operator" or "run"
    at: int  # ms
    fields: dict[str, Any]


class Subscription:
    """One subscriber's queue; ``next`` waits for the next event of its tenant."""

    def __init__(self, hub: EventHub, tenant: str, size: int, resumed: bool) -> None:
        self.hub = hub
        self.tenant = tenant
        self.resumed = resumed
        self.cut_off = False  # fell too far behind, or the hub closed
        self._size = size
        # one slot more than events: the end marker always fits, and nothing queued is
        # dropped, so a reconnect from the last id delivered leaves no gap
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(size + 1)

    def offer(self, event: Event | None) -> None:
        """Queue an event (None: the end); past ``size`` events, end the stream."""
        if self.cut_off:
            return
        if event is None or self._queue.qsize() >= self._size:
            self.cut_off = True
            event = None
        self._queue.put_nowait(event)

    async def next(self, timeout_s: float) -> Event | None:
        """The next event; None when ``timeout_s`` passed with none. Raises
        ``EOFError`` once the subscription was cut off and drained."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return None
        if event is None:
            raise EOFError("event stream ended")
        return event

    def close(self) -> None:
        self.hub.unsubscribe(self)


class EventHub:
    def __init__(self, ring: int = 1_024, queue: int = 256) -> None:
        self._ring: deque[Event] = deque(maxlen=ring)
        self._queue_size = queue
        self._subscribers: dict[str, set[Subscription]] = {}
        self._next_id = 1
        self.published = 0
        self.closed = False

    def begin(self, epoch: int) -> None:
        """Start this process's ids above every id an earlier boot handed out."""
        self._next_id = (epoch << EPOCH_SHIFT) + 1
        self._ring.clear()
        self.closed = False

    def __len__(self) -> int:
        """Live subscriptions."""
        return sum(len(subs) for subs in self._subscribers.values())

    def subscribe(self, tenant: str, last_id: int | None = None) -> Subscription:
        """Events of ``tenant`` from now on; with ``last_id``, first those after it
        that the ring still holds."""
        oldest = self._ring[0].id if self._ring else self._next_id
        # nothing was lost when the ring still reaches back to the event after last_id
        # (and last_id is one of ours: not from an earlier boot, not from the future)
        resumed = last_id is not None and oldest <= last_id + 1 <= self._next_id
        sub = Subscription(self, tenant, self._queue_size, resumed)
        if self.closed:  # the broker is stopping: the stream ends at once
            sub.offer(None)
            return sub
        if resumed:
            for event in self._ring:
                if event.id > last_id and event.tenant == tenant:  # type: ignore[operator]
                    sub.offer(event)
        self._subscribers.setdefault(tenant, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.tenant)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.tenant]

    def publish(self, tenant: str, kind: str, at: int, fields: dict[str, Any]) -> Event:
        event = Event(self._next_id, tenant, kind, at, fields)
        self._next_id += 1
        self.published += 1
        self._ring.append(event)
        for sub in self._subscribers.get(tenant, ()):
            sub.offer(event)
        return event

    def committed(self, batch: FlushBatch) -> None:
        """Publish what a flush just made durable (the flusher calls this)."""
        for row in batch.audit:
            self._audit(row)
        for run in batch.runs:
            self._run(run)

    def close(self) -> None:
        """End every subscription, and any made from now on (the broker is stopping)."""
        self.closed = True
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.offer(None)

    def _audit(self, row: AuditRow) -> None:
        kind = "incident" if row.action in INCIDENT_ACTIONS else "operator"
        fields = {
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "reason": row.reason,
            "ticket": row.ticket,
        }
        self.publish(row.tenant, kind, row.at, fields)

    def _run(self, run: RunRow) -> None:
        self.publish(run.tenant, "run", run.updated, {"runId": run.run_id, "status": run.status})
