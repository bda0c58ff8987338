"""The journal coalesces a flush's records: one history row per job and attempt."""

from __future__ import annotations

from collections.abc import Callable

from broker import states
from broker.engine import AckItem, Engine, JobMeta, JobSpec
from broker.service.journal import Journal
from broker.service.meta_codec import decode_meta
from broker.store import MemoryLedger

T = "t"


def test_submit_claim_complete_in_one_flush_is_two_rows(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine()
    journal = Journal(engine)
    meta = JobMeta(project="p")
    replies, records = engine.submit(10, T, [JobSpec("scan", b'{"x":1}', meta=meta)])
    journal.add(records)
    jid = replies[0].jid
    grant, records = engine.claim(11, T, "w1", ["scan"], 1, 500)
    journal.add(records)
    journal.add(engine.heartbeat(12, T, [jid], grant.tokens, [900])[1])
    journal.add(engine.complete(13, T, [jid], grant.tokens, [b'{"ok":1}'])[1])
    batch = journal.cut()
    assert len(batch) == 2
    (row,) = batch.inserts
    assert row.state == states.SUCCEEDED and row.attempt == 1 and row.payload == b'{"x":1}'
    assert decode_meta(row.meta) == meta and row.last_status == "succeeded"
    (event,) = batch.history
    assert (event.state, event.token, event.worker, event.leased_at) == (
        states.SUCCEEDED,
        grant.tokens[0],
        "w1",
        11,
    )
    assert (event.deadline, event.finished, event.status, event.output) == (
        912,
        13,
        "succeeded",
        b'{"ok":1}',
    )
    assert len(journal) == 0 and len(journal.cut()) == 0


async def test_flushes_replayed_into_a_ledger_give_the_engines_state(
    new_engine: Callable[..., Engine],
) -> None:
    """Whatever happens between flushes, folding the rows gives the engine's truth."""
    engine = new_engine()
    journal = Journal(engine)
    ledger = MemoryLedger()
    await ledger.open()

    async def flush() -> None:
        await ledger.apply(journal.cut())

    journal.add(engine.submit(0, T, [JobSpec("scan", b"{}")] * 3)[1])
    grant, records = engine.claim(1, T, "w1", ["scan"], 3, 100)
    journal.add(records)
    await flush()
    jids = [j.jid for j in grant.jobs]
    journal.add(engine.ack(5, T, [AckItem(jids[0], grant.tokens[0], "failed")])[1])
    journal.add(engine.expire_leases(200))  # jids[1] and jids[2] expire ...
    again, records = engine.claim(201, T, "w2", ["scan"], 1, 100)  # ... one is leased again
    journal.add(records)
    journal.add(engine.release_due(engine.timers.next_due()))
    await flush()
    for jid in jids:
        stored = await ledger.read_job(jid)
        job = engine.jobs[jid]
        assert stored is not None
        assert (stored.job.state, stored.job.attempt) == (job.state, job.attempt)
        assert stored.job.lease_token == engine.leases.token_of(jid)
    second = await ledger.read_job(again.jobs[0].jid)
    assert second is not None
    assert [a.status for a in second.attempts] == ["expired", None]
    assert second.attempts[1].worker == "w2"
    first = await ledger.read_job(jids[0])
    assert first is not None and [t.reason for t in first.transitions] == ["due"]
    assert first.attempts[0].status == "failed"


def test_claims_are_held_back_to_meet_their_acks(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine()
    journal = Journal(engine, hold_ms=1_000)
    journal.add(engine.submit(0, T, [JobSpec("scan", b"{}")] * 3)[1])
    assert len(journal.cut(0).inserts) == 3  # submissions are never held
    grant, records = engine.claim(10, T, "w1", ["scan"], 3, 60_000)
    journal.add(records)
    assert len(journal.cut(500)) == 0 and len(journal) == 3  # fresh claims wait
    assert journal.due_in_ms(500) == 510
    jids = [job.jid for job in grant.jobs]
    journal.add(engine.complete(600, T, jids[:1], grant.tokens[:1])[1])
    (row,) = journal.cut(700).history  # the ack and its claim: one row
    assert (row.jid, row.worker, row.leased_at, row.status) == (jids[0], "w1", 10, "succeeded")
    late = journal.cut(1_010)  # the others are due now
    assert sorted(r.jid for r in late.history) == jids[1:]
    assert all(r.state == states.LEASED and r.finished == 0 for r in late.history)
    journal.add(engine.claim(1_020, T, "w2", ["scan"], 1, 60_000)[1])
    assert len(journal.cut(1_020, everything=True)) == 0  # nothing was ready to claim
    assert len(journal) == 0
