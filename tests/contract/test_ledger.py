"""One contract suite, run against every ledger implementation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker import states
from broker.store import AttemptRow, FlushBatch, JobRow, Ledger, MemoryLedger, TransitionRow
from broker.store.sqlite import SqliteLedger

Reopen = Callable[[], Awaitable[Ledger]]


def job(jid: int, state: int = states.READY, **kw: object) -> JobRow:
    base = dict(
        jid=jid,
        tenant="t",
        job_type="scan",
        priority=5,
        state=state,
        attempt=0,
        max_attempts=5,
        lease_ms=30_000,
        created=1_000 + jid,
        not_before=0,
        payload=b'{"n":%d}' % jid,
        meta=None,
        due=0,
        lease_token=0,
        lease_worker=None,
        lease_deadline=0,
        last_token=0,
        last_status=None,
        updated=1_000 + jid,
    )
    base.update(kw)
    return JobRow(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
async def ledger_and_reopen(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Ledger, Reopen]]:
    """A fresh open ledger, and a way to close it and open the same store again."""
    opened: list[Ledger] = []
    memory = MemoryLedger()

    async def make() -> Ledger:
        for ledger in opened:
            await ledger.close()
        ledger: Ledger = memory if request.param == "memory" else SqliteLedger(tmp_path / "l.db")
        await ledger.open()
        opened.append(ledger)
        return ledger

    first = await make()
    yield first, make
    for ledger in opened:
        await ledger.close()


@pytest.fixture
def ledger(ledger_and_reopen: tuple[Ledger, Reopen]) -> Ledger:
    return ledger_and_reopen[0]


async def test_empty_store(ledger: Ledger) -> None:
    live = await ledger.load_live(0)
    assert live.jobs == [] and live.next_jid == 1 and live.recent_keyed == []
    assert await ledger.read_job(1) is None
    assert await ledger.ping() is True


async def test_insert_update_and_read_back(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1), job(2), job(3, payload=b"\x00\xffraw")]))
    leased = job(
        1,
        state=states.LEASED,
        attempt=1,
        lease_token=77,
        lease_worker="w",
        lease_deadline=9_000,
        updated=2_000,
    )
    await ledger.apply(
        FlushBatch(
            updates=[leased],
            attempts=[AttemptRow(1, 77, "w", 2_000, 9_000, 0, "", None, None)],
            transitions=[TransitionRow(2, 2_000, states.CANCELED, "canceled")],
        )
    )
    history = await ledger.read_job(1)
    assert history is not None and history.job == leased
    assert history.attempts == [AttemptRow(1, 77, "w", 2_000, 9_000, 0, "", None, None)]
    third = await ledger.read_job(3)
    assert third is not None and third.job.payload == b"\x00\xffraw"
    two = await ledger.read_job(2)
    assert two is not None and two.transitions == [
        TransitionRow(2, 2_000, states.CANCELED, "canceled")
    ]


async def test_attempt_rows_coalesce_to_the_latest(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1)]))
    open_row = AttemptRow(1, 5, "w", 10, 100, 0, "", None, None)
    closed = AttemptRow(1, 5, "w", 10, 100, 50, "failed", b'{"class":"x"}', None)
    second = AttemptRow(1, 6, "w", 60, 160, 70, "succeeded", None, b'{"ok":true}')
    await ledger.apply(FlushBatch(attempts=[open_row]))
    await ledger.apply(FlushBatch(attempts=[closed, second]))
    history = await ledger.read_job(1)
    assert history is not None and history.attempts == [closed, second]


async def test_load_live_sees_only_unfinished_jobs(ledger: Ledger) -> None:
    rows = [
        job(1, state=states.READY),
        job(2, state=states.SUCCEEDED),
        job(3, state=states.PENDING, due=5_000),
        job(4, state=states.DEAD, meta=b'{"idempotencyKey":"k"}', updated=100),
        job(5, state=states.CANCELED, meta=b'{"idempotencyKey":"j"}', updated=900),
        job(6, state=states.LEASED, lease_token=3, lease_worker="w", lease_deadline=7),
        job(7, state=states.BLOCKED),
    ]
    await ledger.apply(FlushBatch(inserts=rows))
    live = await ledger.load_live(keyed_since=500)
    assert [row.jid for row in live.jobs] == [1, 3, 6, 7]
    assert live.jobs[1] == rows[2] and live.jobs[2] == rows[5]
    assert live.next_jid == 8
    assert [row.jid for row in live.recent_keyed] == [5]


async def test_a_failed_flush_changes_nothing(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1)]))
    bad = FlushBatch(
        inserts=[job(2), job(1)],  # job 1 exists already: the whole flush must fail
        attempts=[AttemptRow(2, 1, "w", 1, 2, 0, "", None, None)],
    )
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own driver error
        await ledger.apply(bad)
    assert await ledger.read_job(2) is None
    assert (await ledger.load_live(0)).next_jid == 2
    await ledger.apply(FlushBatch(inserts=[job(2)]))  # and the store still works


async def test_state_survives_reopen(ledger_and_reopen: tuple[Ledger, Reopen]) -> None:
    ledger, reopen = ledger_and_reopen
    await ledger.apply(FlushBatch(inserts=[job(1), job(2, state=states.SUCCEEDED)]))
    first = await ledger.begin_epoch()
    again = await reopen()
    assert await again.begin_epoch() == first + 1
    live = await again.load_live(0)
    assert [row.jid for row in live.jobs] == [1] and live.next_jid == 3


async def test_concurrent_flushes_are_serialised(ledger: Ledger) -> None:
    batches = [FlushBatch(inserts=[job(i * 100 + k) for k in range(1, 50)]) for i in range(8)]
    await asyncio.gather(*(ledger.apply(b) for b in batches))
    assert len((await ledger.load_live(0)).jobs) == 8 * 49


async def test_closing_row_keeps_the_opening_rows_worker(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1)]))
    await ledger.apply(FlushBatch(attempts=[AttemptRow(1, 9, "w7", 10, 100, 0, "", None, None)]))
    await ledger.apply(FlushBatch(attempts=[AttemptRow(1, 9, "", 0, 0, 40, "expired", None, None)]))
    history = await ledger.read_job(1)
    assert history is not None
    assert history.attempts == [AttemptRow(1, 9, "w7", 10, 100, 40, "expired", None, None)]
