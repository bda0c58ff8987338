"""Run commands and reads of the service: the engine decides, the ledger remembers.

The engine holds a run only while one of its jobs is live. Commands about a
run it no longer holds (a job joining a finished run, a replay of a run that
failed at a leaf) first bring the run back from the ledger, after writing
everything pending so the ledger is current. Views are read from the ledger
the same way, so they show exactly what is durable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import states
from ..engine import JobMeta, JobSpec, SubmitReply
from ..engine.commands import RunReply
from ..engine.records import Audited
from ..errors import IllegalTransition, NotFound
from ..store import AuditRow, RunHistory, RunRow
from ..store.text import storable
from .meta_codec import decode_meta

if TYPE_CHECKING:
    from .broker import Broker

REPLAY_PRIORITY = 9  # a replayed job goes ahead of the queue


def new_run_id(now_ms: int) -> str:
    """A UUIDv7: sortable by creation time, unique without coordination."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64
    return str(uuid.UUID(int=value | 0b10 << 62 | rand & ((1 << 62) - 1)))


class RunOps:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    # -- commands -------------------------------------------------------------------
    async def create(self, tenant: str, token: str | None, specs: Sequence[JobSpec]) -> RunReply:
        broker = self.broker
        broker.refuse_if_crowded(tenant, len(specs))
        broker.refuse_if_saturated()
        now = broker.clock.now_ms()
        reply, records = broker.engine.create_run(now, tenant, new_run_id(now), token, specs)
        broker.after(records)
        await broker.flusher.commit(records)
        return reply

    async def join(self, tenant: str, run_id: str, specs: Sequence[JobSpec]) -> list[SubmitReply]:
        """A submission whose jobs name a ``runId``: they join that run, or start it."""
        broker = self.broker
        broker.refuse_if_saturated()
        await self._hold(tenant, run_id)
        try:
            replies, records = broker.engine.submit(broker.clock.now_ms(), tenant, specs)
        finally:
            broker.engine.runs.drop_idle(run_id)
        broker.counters["submitted"] += len(replies)
        broker.after(records)
        await broker.flusher.commit(records)
        return replies

    async def cancel(self, tenant: str, run_id: str) -> int:
        """Cancel every live job of a run; returns how many were canceled."""
        broker = self.broker
        broker.refuse_if_saturated()
        count, records = broker.engine.cancel_run(broker.clock.now_ms(), tenant, run_id)
        if not records:
            await self.read(tenant, run_id)  # NotFound unless the run exists (and is done)
            return 0
        await broker.flusher.commit(records)
        return count

    async def replay(
        self, tenant: str, run_id: str, jids: Sequence[int], actor: str, reason: str
    ) -> list[int]:
        """Partial replay; returns the ids of the jobs brought back or re-armed."""
        broker = self.broker
        broker.refuse_if_saturated()
        engine = broker.engine
        await self._hold(tenant, run_id)
        try:
            targets = engine.replay_targets(tenant, run_id, jids)
            await broker.flusher.commit([], everything=True)  # the failed jobs' rows are current
            rows = []
            for jid in targets:
                found = await broker.ledger.read_job(jid)
                if found is None:
                    raise NotFound(f"job {jid} is not in the ledger")
                rows.append(found.job)
            now = broker.clock.now_ms()
            jobs, records = engine.replay_run(
                now, tenant, run_id, jids, rows, decode_meta, actor, reason
            )
        finally:
            engine.runs.drop_idle(run_id)
        broker.after(records)
        await broker.flusher.commit(records)
        return [job.jid for job in jobs]

    async def clone(
        self,
        tenant: str,
        ref: tuple[int, int],
        public_id: str,
        actor: str,
        reason: str | None,
    ) -> SubmitReply:
        """Replay one finished job (``ref``: its creation time and number) as a new
        standalone job pointing back at it."""
        broker = self.broker
        broker.refuse_if_saturated()
        broker.refuse_if_crowded(tenant, 1)
        created, jid = ref
        found = await broker.read_job(jid)
        if found is None or found.job.tenant != tenant or found.job.created != created:
            raise NotFound(f"job {public_id} not found")
        row = found.job
        if row.state not in states.TERMINAL and row.state != states.BLOCKED:
            raise IllegalTransition(jid, states.NAMES[row.state], "replayed")
        meta = decode_meta(row.meta) or JobMeta()
        spec = JobSpec(
            row.job_type,
            row.payload,
            REPLAY_PRIORITY,
            row.max_attempts,
            row.lease_ms,
            0,
            JobMeta(meta.project, meta.correlation_id, None, meta.source_host, replay_of=public_id),
        )
        now = broker.clock.now_ms()
        replies, records = broker.engine.submit(now, tenant, [spec])
        audit = Audited(now, tenant, actor, "job.replay", public_id, reason, None)
        records.append(audit)
        broker.counters["submitted"] += 1
        broker.after(records)
        await broker.flusher.commit(records)
        return replies[0]

    # -- reads ----------------------------------------------------------------------------
    async def read(self, tenant: str, run_id: str) -> RunHistory:
        broker = self.broker
        await broker.flusher.commit([], everything=True)
        found = await self._stored_run(run_id)
        if found is None or found.run.tenant != tenant:
            raise NotFound(f"run {run_id} not found")
        return found

    async def page(
        self, tenant: str, status: str | None, before: tuple[int, str] | None, limit: int
    ) -> list[RunRow]:
        await self.broker.flusher.commit([], everything=True)
        return await self.broker.ledger.list_runs(tenant, status, before, limit)

    async def audit(self, tenant: str, limit: int) -> list[AuditRow]:
        await self.broker.flusher.commit([], everything=True)
        return await self.broker.ledger.read_audit(tenant, limit)

    # -- internals ----------------------------------------------------------------------
    async def _stored_run(self, run_id: str) -> RunHistory | None:
        """The run as stored; None too for an id no store could hold (no run has it)."""
        if not storable(run_id):
            return None
        return await self.broker.ledger.read_run(run_id)

    async def _hold(self, tenant: str, run_id: str) -> None:
        """Make sure the engine holds the run, loading it back from the ledger."""
        engine = self.broker.engine
        if engine.knows_run(run_id):
            if engine.runs.find(engine.tenants.find(tenant), run_id) is None:
                raise NotFound(f"run {run_id} not found")
            return
        await self.broker.flusher.commit([], everything=True)
        found = await self._stored_run(run_id)
        if found is None:
            return  # a new run: the engine starts it with the caller's jobs
        if found.run.tenant != tenant:
            raise NotFound(f"run {run_id} not found")
        if not engine.knows_run(run_id):  # it may have come back while we read
            engine.load_run(found.run, [job.job for job in found.jobs], decode_meta)
