"""The Broker: engine + ledger + clock + background services.

It owns the order of things: on start it opens the ledger, counts a new boot
epoch, loads every live job and lease, rebuilds the engine, and only then
starts the flusher and the ticker (the API opens its port after ``start``
returns). It stops them in reverse order, writing what is pending.

Durability as in ARCHITECTURE.md: submissions and completions are answered
after the flush holding them is committed; claims and heartbeats at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from .. import states
from ..engine import (
    AckItem,
    AckReply,
    Changed,
    Engine,
    Finished,
    Grant,
    HeartbeatReply,
    JobSpec,
    Record,
    SubmitReply,
    Submitted,
)
from ..engine.commands import EMPTY_GRANT
from ..engine.limits import Quota, Source
from ..engine.records import Audited
from ..errors import Backpressure, NotFound, RateLimited
from ..store import JobHistory, Ledger
from .clock import Clock, SystemClock
from .events import EventHub
from .flusher import Flusher
from .journal import Journal
from .limit_codec import decode_limit
from .meta_codec import decode_meta
from .runs import RunOps
from .settings import ServiceSettings
from .ticker import Ticker
from .waiters import Waiters

log = logging.getLogger("broker")

TOKEN_EPOCH_SHIFT = 40


def _progress(read: int) -> None:
    log.info("… %d live jobs read", read)


class Audit(NamedTuple):
    """Who asked for an operator action, and why (goes to the audit log)."""

    actor: str
    action: str
    target: str
    reason: str | None
    ticket: str | None


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Broker:
    def __init__(
        self, ledger: Ledger, settings: ServiceSettings | None = None, clock: Clock | None = None
    ) -> None:
        self.ledger = ledger
        self.settings = settings or ServiceSettings()
        self.clock = clock or SystemClock()
        self.engine = Engine(self.settings.engine)
        self.waiters = Waiters()
        self.events = EventHub()
        self.flusher = self._new_flusher()
        self.ticker = Ticker(self.engine, self.clock, self._records_from_ticker)
        self.epoch = 0
        self.started = False
        self.counters = {"claimed": 0, "acked": 0, "submitted": 0}
        self.runs = RunOps(self)

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Load state and start the background services; the port opens after this."""
        await self.ledger.open()
        self.epoch = await self.ledger.begin_epoch()
        self.events.begin(self.epoch)
        retention = self.settings.engine.idempotency_retention_ms
        started = time.monotonic()
        log.info("loading live state from %s", self.ledger.url)
        live = await self.ledger.load_live(self.clock.now_ms() - retention, _progress)
        self.engine = Engine(
            self.settings.engine,
            first_jid=live.next_jid,
            first_token=(self.epoch << TOKEN_EPOCH_SHIFT) + 1,
        )
        self.engine.restore_limits(
            self.clock.now_ms(),
            [(r.kind, r.tenant, r.name, decode_limit(r.kind, r.config)) for r in live.limits],
        )
        self.engine.restore(live.jobs, live.recent_keyed, decode_meta, live.runs, live.run_members)
        log.info(
            "loaded %d live jobs from %s in %.1f s (boot epoch %d)",
            len(live.jobs),
            self.ledger.url,
            time.monotonic() - started,
            self.epoch,
        )
        self.flusher = self._new_flusher()
        self.ticker = Ticker(self.engine, self.clock, self._records_from_ticker)
        for service in self._services():
            await service.start()
        self.waiters.closed = False
        self.started = True

    def stop_waiting(self) -> None:
        """Answer parked long polls now, empty, and park no more: the first step of
        a shutdown, so that stopping the HTTP site does not wait out their waits."""
        self.waiters.close()

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.stop_waiting()
        for service in reversed(self._services()):
            await service.stop()
        self.events.close()  # after the last flush: its events are out too
        await self.ledger.close()

    def _new_flusher(self) -> Flusher:
        journal = Journal(self.engine, self.settings.claim_hold_ms)
        retention = self.settings.retention_ms
        if retention:
            retention = max(retention, self.settings.engine.idempotency_retention_ms)
        backlog = self.settings.max_backlog
        return Flusher(
            self.ledger,
            journal,
            backlog,
            clock=self.clock,
            retention_ms=retention,
            on_commit=self.events.committed,
        )

    def _services(self) -> list[Service]:
        """Background services, in start order (stopped in reverse)."""
        return [self.flusher, self.ticker]

    # -- commands -------------------------------------------------------------------
    async def submit(self, tenant: str, specs: Sequence[JobSpec]) -> list[SubmitReply]:
        self.refuse_if_crowded(tenant, len(specs))
        run_id = next((s.meta.run_id for s in specs if s.meta and s.meta.run_id), None)
        if run_id is not None:
            return await self.runs.join(tenant, run_id, specs)
        self.refuse_if_saturated()
        replies, records = self.engine.submit(self.clock.now_ms(), tenant, specs)
        self.counters["submitted"] += sum(not r.deduplicated for r in replies)
        self.after(records)
        await self.flusher.commit(records)
        return replies

    async def claim(
        self,
        tenant: str | None,
        worker: str,
        job_types: Sequence[str],
        max_jobs: int,
        lease_ms: int | None,
        wait_ms: int = 0,
        gone: Callable[[], bool] | None = None,
    ) -> Grant:
        """Lease ready jobs; with ``wait_ms`` wait (no polling) until some are ready.

        ``gone`` tells whether the caller stopped listening (a disconnected
        long poll): jobs are then not leased to nobody."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(wait_ms, self.settings.max_wait_ms) / 1000
        while True:
            if not self.started or (gone is not None and gone()):
                return EMPTY_GRANT
            self.ticker.tick()
            grant, records = self.engine.claim(
                self.clock.now_ms(), tenant, worker, job_types, max_jobs, lease_ms
            )
            if grant.jobs:
                self.counters["claimed"] += len(grant.jobs)
                self._note_limits(records)  # an expired throttle lets a slowed bucket go
                self.flusher.add(records)
                self.ticker.poke(min(grant.deadlines))
                return grant
            remaining = give_up - loop.time()
            if remaining <= 0 or max_jobs == 0 or self.waiters.closed:
                return EMPTY_GRANT
            await self.waiters.wait(tenant, remaining)

    def heartbeat(
        self,
        tenant: str,
        jids: Sequence[int],
        tokens: Sequence[int],
        extend_ms: Sequence[int],
        progress: Sequence[bytes | None] | None = None,
    ) -> list[HeartbeatReply]:
        self.ticker.tick()  # a lease past its deadline is lost, even before the reaper ran
        replies, records = self.engine.heartbeat(
            self.clock.now_ms(), tenant, jids, tokens, extend_ms, progress
        )
        self.flusher.add(records)
        return replies

    async def ack(self, tenant: str, items: Sequence[AckItem]) -> list[AckReply]:
        self.refuse_if_saturated()
        self.ticker.tick()  # an ack after the lease deadline is a conflict, reaper or not
        replies, records = self.engine.ack(self.clock.now_ms(), tenant, items)
        self._note_limits(records)
        self.counters["acked"] += len(items)
        self.after(records)
        await self.flusher.commit(records)
        return replies

    async def complete(
        self, tenant: str, jids: Sequence[int], tokens: Sequence[int]
    ) -> list[AckReply]:
        """Successes without output, as columns: the hot path of ``ack``."""
        self.refuse_if_saturated()
        self.ticker.tick()
        replies, records = self.engine.complete(self.clock.now_ms(), tenant, jids, tokens)
        self._note_limits(records)
        self.counters["acked"] += len(jids)
        if len(records) > 1 or self.engine.limits.active:  # children claimable, slots freed
            self.after(records)
        await self.flusher.commit(records)
        return replies

    async def cancel(self, tenant: str, jid: int) -> int:
        self.refuse_if_saturated()
        state, records = self.engine.cancel(self.clock.now_ms(), tenant, jid)
        await self.flusher.commit(records)
        return state

    async def set_limit(
        self, tenant: str, kind: str, name: str, config: object, audit: Audit
    ) -> None:
        """An operator's change of a limit, in force at once, answered once durable."""
        self.refuse_if_saturated()
        now = self.clock.now_ms()
        records = [
            self.engine.set_limit(now, tenant, kind, name, config),
            Audited(now, tenant, audit.actor, audit.action, audit.target, audit.reason,
                    audit.ticket),
        ]  # fmt: skip
        self._note_limits(records)  # a new rate lets a slowed bucket's kept state go
        self._wake_if_lifted()
        await self.flusher.commit(records)

    def quotas_of(self, tenant: str) -> list[tuple[str, Quota]]:
        return self.engine.limits_of(tenant, "quota")  # type: ignore[return-value]

    def sources_of(self, tenant: str) -> list[tuple[str, Source]]:
        return self.engine.limits_of(tenant, "source")  # type: ignore[return-value]

    def quota_of(self, tenant: str, job_type: str) -> Quota | None:
        return dict(self.quotas_of(tenant)).get(job_type)

    def source_of(self, tenant: str, host: str) -> Source | None:
        return dict(self.sources_of(tenant)).get(host)

    async def retry_job(
        self, tenant: str, created: int, jid: int, public_id: str, audit: Audit
    ) -> tuple[int, int]:
        """Manual retry of a dead or canceled job, in place; a job of a run is
        retried by replaying it in its run. Returns (jid, new state)."""
        self.refuse_if_saturated()
        self.refuse_if_crowded(tenant, 1)
        found = await self.read_job(jid)
        if found is None or found.job.tenant != tenant or found.job.created != created:
            raise NotFound(f"job {public_id} not found")
        meta = decode_meta(found.job.meta)
        if meta is not None and meta.run_id is not None:
            await self.runs.replay(tenant, meta.run_id, [jid], audit.actor, audit.reason or "")
        else:
            now = self.clock.now_ms()
            records = self.engine.retry_job(now, tenant, found.job, meta)
            records.append(Audited(now, tenant, audit.actor, audit.action, audit.target,
                                   audit.reason, audit.ticket))  # fmt: skip
            self.after(records)
            await self.flusher.commit(records)
        job = self.engine.jobs.get(jid)
        return jid, job.state if job is not None else self.engine.finished_state(jid)

    def _wake_if_lifted(self) -> None:
        if self.engine.lifted:
            self.engine.lifted = False
            self.waiters.wake_all()

    async def read_job(self, jid: int) -> JobHistory | None:
        """A job's stored row and history, after pending writes about it landed."""
        await self.flusher.commit([], everything=True)
        return await self.ledger.read_job(jid)

    async def ready(self) -> bool:
        return self.started and self.flusher.healthy and await self.ledger.ping()

    # -- internals --------------------------------------------------------------------
    def refuse_if_crowded(self, tenant: str, adding: int) -> None:
        """Shed submissions past the live-job limits (429), before memory grows."""
        for limit, whose in (
            (self.settings.max_live_per_tenant, tenant),
            (self.settings.max_live, None),
        ):
            if not limit:
                continue
            live = self.engine.live_jobs(whose)
            if live + adding > limit:
                raise RateLimited(
                    f"{'this tenant' if whose else 'the broker'} has {live} unfinished jobs;"
                    f" the limit is {limit}",
                    limit=limit,
                    remaining=max(0, limit - live),
                    retry_after_s=1,
                )

    def refuse_if_saturated(self) -> None:
        if self.flusher.saturated:
            raise Backpressure(
                f"ledger backlog is full ({self.flusher.backlog} rows waiting); retry shortly"
            )

    def _note_limits(self, records: list[Record]) -> None:
        """Add the engine's pending incidents and slowed-bucket states to ``records``."""
        limits = self.engine.limits
        if limits.incidents or limits.bucket_changes:
            records.extend(self.engine.take_incidents())

    def _records_from_ticker(self, records: list[Record]) -> None:
        self._note_limits(records)
        self.flusher.add(records)
        self._wake_ready(records)
        self._wake_if_lifted()

    def after(self, records: list[Record]) -> None:
        """Wake claims that can now get jobs and re-arm the ticker for new deadlines."""
        self._wake_ready(records)
        if self.engine.limits.active:  # freed slots and refilled buckets lift limits
            self.ticker.poke(self.engine.next_wakeup())
        for record in records:
            if isinstance(record, Finished):
                due = [d for d in record.due if d]
                if due:
                    self.ticker.poke(min(due))
            elif isinstance(record, Submitted):
                waiting = [j.not_before for j in record.jobs if j.state == states.PENDING]
                if waiting:
                    self.ticker.poke(min(waiting))
            elif isinstance(record, Changed):
                # a run's children may have been timed by their not-before
                self.ticker.poke(self.engine.timers.next_due())

    def _wake_ready(self, records: list[Record]) -> None:
        if not self.waiters:
            return
        tenants: set[int] = set()
        for record in records:
            if isinstance(record, Submitted):
                tenants.update(j.tenant for j in record.jobs if j.state == states.READY)
            elif isinstance(record, Changed) and record.state == states.READY:
                tenants.update(j.tenant for j in record.jobs)
            elif isinstance(record, Finished):
                tenants.update(
                    j.tenant
                    for j, s in zip(record.jobs, record.states, strict=True)
                    if s == states.READY
                )
        if tenants:
            self.waiters.wake(self.engine.tenants.name(t) for t in tenants)
