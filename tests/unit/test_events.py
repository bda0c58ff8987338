"""The event hub: per-tenant fan-out, a replay ring for reconnects, a bounded queue."""

from __future__ import annotations

import pytest

from broker.service.events import EventHub
from broker.store import AuditRow, FlushBatch, RunRow


async def test_a_subscriber_gets_its_tenants_events_in_order() -> None:
    hub = EventHub()
    sub = hub.subscribe("a")
    hub.publish("b", "operator", 1, {"n": 0})
    for n in range(3):
        hub.publish("a", "operator", 1, {"n": n})
    got = [await sub.next(0.1) for _ in range(3)]
    assert [e.fields["n"] for e in got if e] == [0, 1, 2]
    assert await sub.next(0.01) is None  # nothing more: a timeout, not an end
    sub.close()
    assert len(hub) == 0


async def test_a_reconnect_resumes_from_the_ring_or_says_it_cannot() -> None:
    hub = EventHub(ring=4)
    ids = [hub.publish("a", "operator", 1, {"n": n}).id for n in range(6)]
    kept = hub.subscribe("a", last_id=ids[2])  # ids[3..5] are still in the ring
    assert kept.resumed
    assert [(await kept.next(0.1)).fields["n"] for _ in range(3)] == [3, 4, 5]  # type: ignore[union-attr]
    lost = hub.subscribe("a", last_id=ids[0])  # ids[1] fell out of the ring
    assert not lost.resumed
    assert not hub.subscribe("a").resumed  # no Last-Event-ID: from now


async def test_a_subscriber_that_falls_behind_is_cut_off_without_a_gap() -> None:
    hub = EventHub(queue=3)
    slow = hub.subscribe("a")
    for n in range(5):
        hub.publish("a", "operator", 1, {"n": n})
    assert slow.cut_off
    got = [await slow.next(0.1) for _ in range(3)]  # what was queued is all delivered
    assert [e.fields["n"] for e in got if e] == [0, 1, 2]
    with pytest.raises(EOFError):
        await slow.next(0.1)
    again = hub.subscribe("a", last_id=got[-1].id)  # type: ignore[union-attr]
    assert again.resumed
    assert [(await again.next(0.1)).fields["n"] for _ in range(2)] == [3, 4]  # type: ignore[union-attr]


async def test_committed_batches_become_incident_operator_and_run_events() -> None:
    hub = EventHub()
    sub = hub.subscribe("a")
    batch = FlushBatch(
        audit=[
            AuditRow(5, "a", "broker", "breaker.opened", "fetch@x", "failure rate", None),
            AuditRow(6, "a", "ops", "quota.pause", "fetch", "maintenance", "T-1"),
        ],
        runs=[RunRow("r1", "a", None, 1, "succeeded", 7)],
    )
    hub.committed(batch)
    kinds = [(e.kind, e.at) for e in [await sub.next(0.1) for _ in range(3)] if e]
    assert kinds == [("incident", 5), ("operator", 6), ("run", 7)]


async def test_closing_the_hub_ends_every_subscription() -> None:
    hub = EventHub()
    subs = [hub.subscribe("a"), hub.subscribe("b")]
    hub.close()
    for sub in subs:
        with pytest.raises(EOFError):
            await sub.next(0.1)


async def test_ids_grow_across_restarts_and_an_old_boots_id_does_not_resume() -> None:
    hub = EventHub()
    hub.begin(epoch=1)
    old = hub.publish("a", "operator", 1, {}).id
    hub.begin(epoch=2)  # the next boot
    new = hub.publish("a", "operator", 2, {}).id
    assert new > old
    assert not hub.subscribe("a", last_id=old).resumed  # what happened in between is unknown
    assert hub.subscribe("a", last_id=new).resumed
    assert not hub.subscribe("a", last_id=new + 5).resumed  # not an id of ours


async def test_a_subscription_after_close_ends_at_once() -> None:
    hub = EventHub()
    hub.close()
    with pytest.raises(EOFError):
        await hub.subscribe("a").next(0.1)
    assert len(hub) == 0
