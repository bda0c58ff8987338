"""The Broker service over real ledgers: durability, long poll, restart, outage."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from broker import states
from broker.engine import AckItem, JobMeta, JobSpec
from broker.engine.limits import Quota
from broker.errors import Backpressure
from broker.service import Broker, ManualClock, ServiceSettings
from broker.service.broker import Audit
from broker.store import FlushBatch, Ledger, MemoryLedger
from broker.store.postgres import PostgresLedger
from broker.store.sqlite import SqliteLedger
from tests.contract.test_ledger import POSTGRES

T = "tenant-a"


class FlakyLedger(MemoryLedger):
    """A memory ledger whose writes fail while ``down`` is set, or block while ``gate`` is shut."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.gate = asyncio.Event()
        self.gate.set()
        self.writes = 0

    async def apply(self, batch: FlushBatch) -> None:
        await self.gate.wait()
        if self.down:
            raise ConnectionError("database is down")
        self.writes += 1
        await super().apply(batch)


async def started(ledger: Ledger, clock: ManualClock | None = None, **kw: object) -> Broker:
    broker = Broker(ledger, ServiceSettings(**kw), clock or ManualClock())  # type: ignore[arg-type]
    await broker.start()
    return broker


async def test_submission_is_durable_when_answered() -> None:
    ledger = MemoryLedger()
    broker = await started(ledger)
    replies = await broker.submit(T, [JobSpec("scan", b'{"a":1}')])
    stored = await ledger.read_job(replies[0].jid)
    assert stored is not None and stored.job.payload == b'{"a":1}' and stored.job.tenant == T
    await broker.stop()


async def test_long_poll_wakes_on_submission() -> None:
    broker = await started(MemoryLedger())
    loop = asyncio.get_running_loop()
    began = loop.time()
    claiming = asyncio.ensure_future(broker.claim(T, "w", ["scan"], 5, 1_000, wait_ms=5_000))
    await asyncio.sleep(0.05)
    assert not claiming.done()
    await broker.submit(T, [JobSpec("scan", b"{}")])
    grant = await asyncio.wait_for(claiming, 1)
    assert len(grant.jobs) == 1 and loop.time() - began < 1
    empty = await broker.claim(T, "w", ["scan"], 5, 1_000, wait_ms=30)
    assert empty.jobs == []
    await broker.stop()


async def test_restart_restores_jobs_leases_and_fences(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "ledger.db"
    broker = await started(SqliteLedger(path), clock)
    keyed = JobMeta(idempotency_key="once")
    replies = await broker.submit(
        T,
        [
            JobSpec("scan", b"1"),
            JobSpec("scan", b"2", meta=keyed),
            JobSpec("scan", b"3", not_before=clock.now_ms() + 60_000),
        ],
    )
    grant = await broker.claim(T, "w", ["scan"], 1, 30_000)
    done = await broker.claim(T, "w", ["scan"], 1, 30_000)
    await broker.ack(T, [AckItem(done.jobs[0].jid, done.tokens[0], "succeeded")])
    await broker.stop()

    again = await started(SqliteLedger(path), clock)
    engine = again.engine
    leased_jid = grant.jobs[0].jid
    assert engine.jobs[leased_jid].state == states.LEASED
    assert engine.leases.token_of(leased_jid) == grant.tokens[0]
    assert engine.jobs[replies[2].jid].state == states.PENDING
    assert engine.timers.due_of(replies[2].jid) == clock.now_ms() + 60_000
    assert engine.consistency_errors() == []
    # the old lease still acks; new tokens come from a higher epoch
    (reply,) = await again.ack(T, [AckItem(leased_jid, grant.tokens[0], "succeeded")])
    assert reply.outcome == "accepted"
    (dedup,) = await again.submit(T, [JobSpec("scan", b"again", meta=keyed)])
    assert dedup.deduplicated and dedup.jid == replies[1].jid and dedup.state == states.SUCCEEDED
    (fresh,) = await again.submit(T, [JobSpec("scan", b"4")])
    assert fresh.jid > replies[2].jid
    new_grant = await again.claim(T, "w", ["scan"], 1, 1_000)
    assert new_grant.tokens[0] > max(grant.tokens + done.tokens) and again.epoch == 2
    await again.stop()


async def test_expired_lease_is_requeued_by_the_ticker() -> None:
    clock = ManualClock()
    broker = await started(MemoryLedger(), clock)
    await broker.submit(T, [JobSpec("scan", b"{}")])
    first = await broker.claim(T, "w", ["scan"], 1, 1_000)
    clock.advance(1_000)
    broker.ticker.tick()
    second = await broker.claim(T, "w2", ["scan"], 1, 1_000)
    assert second.jobs[0].jid == first.jobs[0].jid and second.jobs[0].attempt == 2
    (late,) = await broker.ack(T, [AckItem(first.jobs[0].jid, first.tokens[0], "succeeded")])
    assert late.outcome == "conflict"
    await broker.stop()


async def test_outage_holds_answers_then_flushes_everything() -> None:
    ledger = FlakyLedger()
    broker = await started(ledger)
    broker.flusher._retry_base_s = 0.005  # noqa: SLF001 - a fast retry for the test
    ledger.down = True
    submitting = asyncio.ensure_future(broker.submit(T, [JobSpec("scan", b"{}")] * 3))
    await asyncio.sleep(0.05)
    assert not submitting.done() and broker.flusher.healthy is False
    assert not await broker.ready()
    # claims and heartbeats keep working from memory during the outage
    grant = await broker.claim(T, "w", ["scan"], 3, 10_000)
    assert len(grant.jobs) == 3
    ledger.down = False
    replies = await asyncio.wait_for(submitting, 5)
    assert len(replies) == 3 and await broker.ready()
    for reply in replies:
        assert await ledger.read_job(reply.jid) is not None
    await broker.stop()


async def test_backpressure_refuses_without_changing_state() -> None:
    ledger = FlakyLedger()
    broker = await started(ledger, max_backlog=5)
    ledger.gate.clear()
    blocked = asyncio.ensure_future(broker.submit(T, [JobSpec("scan", b"{}")] * 6))
    await asyncio.sleep(0.01)
    assert broker.flusher.saturated
    before = broker.engine.jobs.items()
    with pytest.raises(Backpressure):
        await broker.submit(T, [JobSpec("scan", b"{}")])
    with pytest.raises(Backpressure):
        await broker.ack(T, [AckItem(1, 1, "succeeded")])
    assert broker.engine.jobs.items() == before
    ledger.gate.set()
    await blocked
    await broker.submit(T, [JobSpec("scan", b"{}")])
    await broker.stop()


async def test_stop_writes_pending_claims(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    broker = await started(SqliteLedger(path))
    (reply,) = await broker.submit(T, [JobSpec("scan", b"{}")])
    await broker.claim(T, "w", ["scan"], 1, 60_000)
    await broker.stop()
    ledger = SqliteLedger(path)
    await ledger.open()
    stored = await ledger.read_job(reply.jid)
    assert (
        stored is not None and stored.job.state == states.LEASED and stored.job.lease_worker == "w"
    )
    await ledger.close()


async def test_a_lease_past_its_deadline_is_fenced_before_the_reaper_runs() -> None:
    clock = ManualClock()
    broker = await started(MemoryLedger(), clock)
    await broker.submit(T, [JobSpec("scan", b"{}")])
    grant = await broker.claim(T, "w", ["scan"], 1, 1_000)
    jid, token = grant.jobs[0].jid, grant.tokens[0]
    clock.advance(1_000)  # the deadline passes; the ticker task has not woken yet
    (beat,) = broker.heartbeat(T, [jid], [token], [1_000])
    assert beat.deadline == -1
    (late,) = await broker.ack(T, [AckItem(jid, token, "succeeded")])
    assert late.outcome == "conflict"
    await broker.stop()


async def test_retention_purges_finished_jobs_and_keeps_their_numbers() -> None:
    ledger = MemoryLedger()
    clock = ManualClock(1_000)
    broker = await started(ledger, clock, retention_ms=1)  # raised to the 24 h idempotency
    (kept,) = await broker.submit(T, [JobSpec("scan", b"{}")])
    done = await broker.submit(T, [JobSpec("scan", b"{}")] * 2)
    grant = await broker.claim(T, "w", ["scan"], 10, 1_000)
    finished = [(job.jid, token) for job, token in zip(grant.jobs, grant.tokens, strict=True)]
    await broker.ack(T, [AckItem(jid, token, "succeeded") for jid, token in finished[1:]])
    await broker.flusher.commit([], everything=True)
    await ledger.compact(1_000)
    await broker.flusher.purge_once()
    assert broker.flusher.purged == 0  # not old enough yet
    clock.advance(25 * 3_600_000)
    await broker.flusher.purge_once()
    assert broker.flusher.purged == 2
    assert [await ledger.read_job(r.jid) for r in done] == [None, None]
    assert await ledger.read_job(kept.jid) is not None  # still leased: live
    await broker.stop()
    again = await started(ledger, clock)
    assert again.engine.next_jid == max(r.jid for r in done) + 1
    await again.stop()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_text_no_store_takes_is_escaped_rather_than_stalling_every_flush(
    store: str, tmp_path: Path
) -> None:
    """A worker id the API would refuse, given to the service directly: SQLite cannot
    encode an unpaired surrogate, Postgres takes no NUL. The write fails once, the
    text is escaped, and this flush and every later one go through."""
    worker = "w\udcff" if store == "sqlite" else "w\x00"
    schema = f"escaped_{uuid.uuid4().hex[:12]}"
    if store == "postgres":
        admin = await asyncpg.connect(POSTGRES)
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        ledger: Ledger = PostgresLedger(POSTGRES, schema=schema)
    else:
        ledger = SqliteLedger(tmp_path / "l.db")
    broker: Broker | None = None
    try:
        broker = await started(ledger)
        (reply,) = await broker.submit(T, [JobSpec("scan", b"{}")])
        grant = await broker.claim(T, worker, ["scan"], 1, 60_000)
        done = await asyncio.wait_for(broker.complete(T, [reply.jid], grant.tokens), 10)
        assert [r.state for r in done] == [states.SUCCEEDED]
        assert broker.flusher.escaped >= 1
        (later,) = await asyncio.wait_for(broker.submit(T, [JobSpec("scan", b"{}")]), 10)
        stored = await ledger.read_job(reply.jid)
        assert stored is not None and stored.attempts[0].worker == worker.encode(
            "utf-8", "backslashreplace"
        ).decode().replace("\x00", "\\x00")
        assert await ledger.read_job(later.jid) is not None
    finally:
        if broker is not None:  # a stalled flusher would hold the stop for good
            await asyncio.wait_for(broker.stop(), 10)
        if store == "postgres":
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()


async def test_events_carry_the_escaped_text_the_ledger_holds(tmp_path: Path) -> None:
    """What a flush publishes is what it wrote: an unpaired surrogate in an audit
    reason would also make the event stream's JSON fail, for every reader."""
    broker = await started(SqliteLedger(tmp_path / "l.db"))
    try:
        sub = broker.events.subscribe(T)
        audit = Audit("ops", "quota.set", "scan", "why\udcff", None)
        await asyncio.wait_for(broker.set_limit(T, "quota", "scan", Quota(max_active=1), audit), 10)
        event = await sub.next(1)
        assert event is not None and event.fields["reason"] == "why\\udcff"
        assert (await broker.ledger.read_audit(T, 10))[0].reason == "why\\udcff"
    finally:
        await asyncio.wait_for(broker.stop(), 10)


async def test_a_write_failing_for_another_reason_escapes_nothing() -> None:
    """A NUL some stores take (the memory and SQLite ledgers do) is written as it is
    when a write fails for a reason that is not the text (here an outage)."""
    ledger = FlakyLedger()
    broker = await started(ledger)
    (reply,) = await broker.submit(T, [JobSpec("scan", b"{}")])
    grant = await broker.claim(T, "w\x00", ["scan"], 1, 60_000)
    ledger.down = True
    completing = asyncio.ensure_future(broker.complete(T, [reply.jid], grant.tokens))
    while not broker.flusher.failures:
        await asyncio.sleep(0.01)
    ledger.down = False
    await asyncio.wait_for(completing, 10)
    stored = await ledger.read_job(reply.jid)
    assert stored is not None and stored.attempts[0].worker == "w\x00"
    assert broker.flusher.escaped == 0
    await broker.stop()
