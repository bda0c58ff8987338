"""The journal coalesces a flush's records into one row per job and per attempt."""

from __future__ import annotations

from collections.abc import Callable

from broker import states
from broker.engine import AckItem, Engine, JobMeta, JobSpec
from broker.service.journal import Journal
from broker.service.meta_codec import decode_meta

T = "t"


def test_submit_claim_complete_in_one_flush_is_two_rows(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine()
    journal = Journal(engine)
    replies, records = engine.submit(
        10, T, [JobSpec("scan", b'{"x":1}', meta=JobMeta(project="p"))]
    )
    journal.add(records)
    grant, records = engine.claim(11, T, "w1", ["scan"], 1, 500)
    journal.add(records)
    heartbeat = engine.heartbeat(12, T, [replies[0].jid], grant.tokens, [900])[1]
    journal.add(heartbeat)
    journal.add(engine.complete(13, T, [replies[0].jid], grant.tokens, [b'{"ok":1}'])[1])
    batch = journal.cut()
    assert len(batch) == 2
    (row,) = batch.inserts
    assert row.state == states.SUCCEEDED and row.attempt == 1 and row.payload == b'{"x":1}'
    assert decode_meta(row.meta) == JobMeta(project="p") and row.last_status == "succeeded"
    (attempt,) = batch.attempts
    assert attempt == (
        replies[0].jid,
        grant.tokens[0],
        "w1",
        11,
        511,
        13,
        "succeeded",
        None,
        b'{"ok":1}',
    )
    assert len(journal) == 0 and len(journal.cut()) == 0


def test_later_flush_updates_and_closes_attempts(new_engine: Callable[..., Engine]) -> None:
    engine = new_engine()
    journal = Journal(engine)
    journal.add(engine.submit(0, T, [JobSpec("scan", b"{}")] * 2)[1])
    grant, records = engine.claim(1, T, "w1", ["scan"], 2, 100)
    journal.add(records)
    first = journal.cut()
    assert [r.state for r in first.inserts] == [states.LEASED] * 2
    assert first.inserts[0].lease_token == grant.tokens[0] and first.inserts[0].lease_worker == "w1"
    jids = [j.jid for j in grant.jobs]
    journal.add(engine.ack(5, T, [AckItem(jids[0], grant.tokens[0], "failed")])[1])
    journal.add(engine.expire_leases(200))
    second = journal.cut()
    assert second.inserts == []
    assert {(r.jid, r.state) for r in second.updates} == {
        (jids[0], states.PENDING),
        (jids[1], states.READY),
    }
    pending = next(r for r in second.updates if r.jid == jids[0])
    assert pending.due == engine.timers.due_of(jids[0]) and pending.lease_token == 0
    assert sorted((a.jid, a.worker, a.status) for a in second.attempts) == [
        (jids[0], "", "failed"),
        (jids[1], "", "expired"),
    ]
    due = engine.timers.due_of(jids[0])
    journal.add(engine.release_due(due))
    third = journal.cut()
    assert [(t.jid, t.state, t.reason) for t in third.transitions] == [
        (jids[0], states.READY, "due")
    ]
