"""One contract suite, run against every ledger implementation."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from broker import states
from broker.store import (
    Attempt,
    AuditRow,
    FlushBatch,
    HistoryRow,
    JobRow,
    Ledger,
    MemoryLedger,
    RunRow,
    Transition,
)
from broker.store.postgres import PostgresLedger
from broker.store.sqlite import SqliteLedger

# the machine's PostgreSQL (CI starts it); each test gets a schema of its own
POSTGRES = os.environ.get("BROKER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

Reopen = Callable[[], Awaitable[Ledger]]


def job(jid: int, state: int = states.READY, **kw: object) -> JobRow:
    base = dict(
        jid=jid, tenant="t", job_type="scan", priority=5, state=state, attempt=0, max_attempts=5,
        lease_ms=30_000, created=1_000 + jid, not_before=0, payload=b'{"n":%d}' % jid, meta=None,
        due=0, lease_token=0, lease_worker=None, lease_deadline=0, last_token=0, last_status=None,
        updated=1_000 + jid,
    )  # fmt: skip
    base.update(kw)
    return JobRow(**base)  # type: ignore[arg-type]


def leased(jid: int, token: int, at: int, deadline: int, attempt: int = 1) -> HistoryRow:
    return HistoryRow(jid, at, states.LEASED, attempt, 0, token, "w", deadline, 0, None,
                      token, "w", at, deadline, 0, None, None, None, None)  # fmt: skip


def finished(jid: int, token: int, at: int, status: str, state: int, **kw: object) -> HistoryRow:
    row = HistoryRow(jid, at, state, 1, 0, 0, None, 0, token, status,
                     token, None, 0, 0, at, status, None, None, None)  # fmt: skip
    return row._replace(**kw)  # type: ignore[arg-type]


def transition(jid: int, at: int, state: int, reason: str) -> HistoryRow:
    return HistoryRow(jid, at, state, 0, 0, 0, None, 0, 0, None,
                      0, None, 0, 0, 0, None, None, None, reason)  # fmt: skip


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def ledger_and_reopen(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Ledger, Reopen]]:
    """A fresh open ledger, and a way to close it and open the same store again."""
    opened: list[Ledger] = []
    memory = MemoryLedger()
    schema = f"contract_{uuid.uuid4().hex[:12]}"
    if request.param == "postgres":
        conn = await asyncpg.connect(POSTGRES)  # no Postgres is a failure here, not a skip
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()

    def new() -> Ledger:
        if request.param == "memory":
            return memory
        if request.param == "sqlite":
            return SqliteLedger(tmp_path / "l.db")
        return PostgresLedger(POSTGRES, schema=schema)

    async def make() -> Ledger:
        for ledger in opened:
            await ledger.close()
        ledger = new()
        await ledger.open()
        opened.append(ledger)
        return ledger

    first = await make()
    yield first, make
    for ledger in opened:
        await ledger.close()
    if request.param == "postgres":
        conn = await asyncpg.connect(POSTGRES)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


@pytest.fixture
def ledger(ledger_and_reopen: tuple[Ledger, Reopen]) -> Ledger:
    return ledger_and_reopen[0]


async def test_empty_store(ledger: Ledger) -> None:
    live = await ledger.load_live(0)
    assert live.jobs == [] and live.next_jid == 1 and live.recent_keyed == []
    assert await ledger.read_job(1) is None
    assert await ledger.ping() is True
    assert await ledger.unfolded() == 0 and await ledger.compact(10) == 0


async def test_insert_and_history_read_back(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1), job(2), job(3, payload=b"\x00\xffraw")]))
    await ledger.apply(
        FlushBatch(
            history=[leased(1, 77, 2_000, 9_000), transition(2, 2_000, states.CANCELED, "canceled")]
        )
    )
    one = await ledger.read_job(1)
    assert one is not None
    assert one.job.state == states.LEASED and one.job.lease_token == 77 and one.job.attempt == 1
    assert one.job.payload == b'{"n":1}' and one.job.updated == 2_000
    assert one.attempts == [Attempt(77, "w", 2_000, 9_000, 0, None, None, None)]
    two = await ledger.read_job(2)
    assert two is not None and two.job.state == states.CANCELED
    assert two.transitions == [Transition(2_000, states.CANCELED, "canceled")]
    three = await ledger.read_job(3)
    assert three is not None and three.job.payload == b"\x00\xffraw" and three.attempts == []


async def test_a_long_flush_keeps_every_row_in_order(ledger: Ledger) -> None:
    """More rows than one multi-row statement takes (SQLite writes 32 at a time):
    every job and every history row lands, each job's attempts in the order sent."""
    jobs = [job(jid) for jid in range(1, 101)]
    history = [leased(jid, 1000 * jid + a, 10 * a, 10 * a + 5, attempt=a)
               for a in (1, 2) for jid in range(1, 101)]  # fmt: skip
    await ledger.apply(FlushBatch(inserts=jobs, history=history))
    assert len((await ledger.load_live(0)).jobs) == 100
    for jid in (1, 32, 33, 64, 100):
        found = await ledger.read_job(jid)
        assert found is not None and found.job.attempt == 2
        assert [a.token for a in found.attempts] == [1000 * jid + 1, 1000 * jid + 2]


async def test_attempt_rows_fold_into_one_attempt(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1)]))
    await ledger.apply(FlushBatch(history=[leased(1, 5, 10, 100)]))
    extended = leased(1, 5, 40, 400)._replace(worker=None, leased_at=0)
    await ledger.apply(FlushBatch(history=[extended]))
    await ledger.apply(FlushBatch(history=[
        finished(1, 5, 50, "failed", states.PENDING, error=b'{"class":"x"}', due=90),
        leased(1, 6, 90, 160, attempt=2),
        finished(1, 6, 95, "succeeded", states.SUCCEEDED, output=b'{"ok":true}', attempt=2),
    ]))  # fmt: skip
    history = await ledger.read_job(1)
    assert history is not None
    assert history.attempts == [
        Attempt(5, "w", 10, 400, 50, "failed", b'{"class":"x"}', None),
        Attempt(6, "w", 90, 160, 95, "succeeded", None, b'{"ok":true}'),
    ]
    assert history.job.state == states.SUCCEEDED and history.job.last_status == "succeeded"


async def test_compaction_changes_nothing_a_reader_sees(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(i) for i in range(1, 6)]))
    await ledger.apply(FlushBatch(history=[leased(i, 100 + i, 10, 500) for i in range(1, 6)]))
    await ledger.apply(FlushBatch(history=[
        finished(1, 101, 20, "succeeded", states.SUCCEEDED),
        finished(2, 102, 20, "failed", states.DEAD),
    ]))  # fmt: skip
    before = [await ledger.read_job(i) for i in range(1, 6)]
    assert await ledger.unfolded() == 7
    assert await ledger.compact(4) == 4
    assert [await ledger.read_job(i) for i in range(1, 6)] == before
    assert await ledger.compact(100) == 3 and await ledger.compact(100) == 0
    assert await ledger.unfolded() == 0
    assert [await ledger.read_job(i) for i in range(1, 6)] == before


async def test_load_live_sees_only_unfinished_jobs(ledger: Ledger) -> None:
    rows = [
        job(1, state=states.READY),
        job(2, state=states.SUCCEEDED),
        job(3, state=states.PENDING, due=5_000),
        job(4, state=states.DEAD, meta=b'{"idempotencyKey":"k"}', updated=100),
        job(5, state=states.READY, meta=b'{"idempotencyKey":"j"}'),
        job(6, state=states.READY),
        job(7, state=states.BLOCKED),
    ]
    await ledger.apply(FlushBatch(inserts=rows))
    await ledger.apply(FlushBatch(history=[
        transition(5, 900, states.CANCELED, "canceled"),
        leased(6, 3, 950, 7_000),
    ]))  # fmt: skip
    live = await ledger.load_live(keyed_since=500)
    assert [row.jid for row in live.jobs] == [1, 3, 6, 7]
    assert live.jobs[1] == rows[2]
    assert live.jobs[2].state == states.LEASED and live.jobs[2].lease_token == 3
    assert live.jobs[2].lease_deadline == 7_000 and live.jobs[2].lease_worker == "w"
    assert live.next_jid == 8
    assert [row.jid for row in live.recent_keyed] == [5]


async def test_a_failed_flush_changes_nothing(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(inserts=[job(1)]))
    bad = FlushBatch(
        inserts=[job(2), job(1)],  # job 1 exists already: the whole flush must fail
        history=[leased(2, 1, 1, 2)],
    )
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own driver error
        await ledger.apply(bad)
    assert await ledger.read_job(2) is None
    assert (await ledger.load_live(0)).next_jid == 2
    await ledger.apply(FlushBatch(inserts=[job(2)]))  # and the store still works


async def test_state_survives_reopen(ledger_and_reopen: tuple[Ledger, Reopen]) -> None:
    ledger, reopen = ledger_and_reopen
    await ledger.apply(FlushBatch(inserts=[job(1), job(2)]))
    await ledger.apply(FlushBatch(history=[finished(2, 9, 5, "succeeded", states.SUCCEEDED)]))
    first = await ledger.begin_epoch()
    again = await reopen()
    assert await again.begin_epoch() == first + 1
    live = await again.load_live(0)
    assert [row.jid for row in live.jobs] == [1] and live.next_jid == 3


async def test_concurrent_flushes_are_serialised(ledger: Ledger) -> None:
    batches = [FlushBatch(inserts=[job(i * 100 + k) for k in range(1, 50)]) for i in range(8)]
    await asyncio.gather(*(ledger.apply(b) for b in batches))
    assert len((await ledger.load_live(0)).jobs) == 8 * 49


# -- runs -------------------------------------------------------------------------------
def run(run_id: str, created: int, status: str = "running", **kw: object) -> RunRow:
    row = RunRow(run_id, "t", None, created, status, created)
    return row._replace(**kw)  # type: ignore[arg-type]


async def test_runs_are_upserted_and_read_with_their_jobs(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(
        inserts=[job(1), job(2, state=states.PENDING), job(3)],
        runs=[run("r1", 10)],
        members=[("r1", 1), ("r1", 2)],
        audit=[AuditRow(10, "t", "op", "run.replay", "r1:1", "why", None)],
    ))  # fmt: skip
    await ledger.apply(FlushBatch(
        history=[leased(1, 7, 20, 99), finished(1, 7, 30, "failed", states.DEAD)],
        runs=[run("r1", 10, "failed", updated=30)],
    ))  # fmt: skip
    read = await ledger.read_run("r1")
    assert read is not None and read.run == run("r1", 10, "failed", updated=30)
    assert [j.job.jid for j in read.jobs] == [1, 2]
    assert read.jobs[0].job.state == states.DEAD and read.jobs[0].attempts[0].token == 7
    assert await ledger.read_run("nope") is None
    assert await ledger.read_audit("t", 10) == [
        AuditRow(10, "t", "op", "run.replay", "r1:1", "why", None)
    ]
    assert await ledger.read_audit("other", 10) == []


async def test_list_runs_pages_newest_first(ledger: Ledger) -> None:
    rows = [run(f"r{i}", 100 + i // 2, "failed" if i % 3 == 0 else "running") for i in range(7)]
    rows.append(run("x", 200)._replace(tenant="other"))
    await ledger.apply(FlushBatch(runs=rows))
    page = await ledger.list_runs("t", None, None, 3)
    assert [r.run_id for r in page] == ["r6", "r5", "r4"]
    page = await ledger.list_runs("t", None, (page[-1].created, page[-1].run_id), 3)
    assert [r.run_id for r in page] == ["r3", "r2", "r1"]
    page = await ledger.list_runs("t", None, (page[-1].created, page[-1].run_id), 3)
    assert [r.run_id for r in page] == ["r0"]
    assert [r.run_id for r in await ledger.list_runs("t", "failed", None, 10)] == ["r6", "r3", "r0"]


async def test_load_live_brings_back_runs_with_live_jobs(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(
        inserts=[job(1), job(2), job(3), job(4), job(5)],
        runs=[run("live", 10), run("done", 11), run("tokened", 600, "succeeded", token="tok"),
              run("old", 12, "succeeded", token="old")],
        members=[("live", 1), ("live", 2), ("done", 3), ("tokened", 4), ("old", 5)],
    ))  # fmt: skip
    await ledger.apply(FlushBatch(history=[
        finished(1, 5, 20, "succeeded", states.SUCCEEDED),
        finished(3, 6, 20, "succeeded", states.SUCCEEDED),
        finished(4, 7, 20, "succeeded", states.SUCCEEDED),
        finished(5, 8, 20, "succeeded", states.SUCCEEDED),
    ]))  # fmt: skip
    live = await ledger.load_live(keyed_since=500)
    assert sorted(r.run_id for r in live.runs) == ["live", "tokened"]
    assert [row.jid for row in live.run_members] == [1]
    assert live.run_members[0].state == states.SUCCEEDED


# -- retention --------------------------------------------------------------------------
async def test_purge_deletes_old_finished_folded_jobs_only(ledger: Ledger) -> None:
    await ledger.apply(FlushBatch(
        # created long before the cutoff, as jobs that finished before it must have been
        inserts=[job(1, created=10), job(2, created=10), job(3, created=10),
                 job(4, state=states.DEAD, created=10, updated=50), job(5, created=10)],
        members=[("r", 1)],
        runs=[run("r", 1)],
    ))  # fmt: skip
    await ledger.apply(FlushBatch(history=[
        finished(1, 7, 100, "succeeded", states.SUCCEEDED),
        finished(2, 8, 100, "succeeded", states.SUCCEEDED),
        finished(3, 9, 900, "succeeded", states.SUCCEEDED),  # too recent
    ]))  # fmt: skip
    assert await ledger.compact(1_000) == 3
    # job 2 changes again after the fold (a replay): not folded, so it stays
    await ledger.apply(FlushBatch(history=[transition(2, 200, states.READY, "replayed")]))
    assert await ledger.purge(before=500, limit=10) == 2  # jobs 1 and 4
    assert await ledger.read_job(1) is None and await ledger.read_job(4) is None
    assert (await ledger.read_job(2)) is not None and (await ledger.read_job(3)) is not None
    found = await ledger.read_run("r")
    assert found is not None and found.jobs == []
    assert await ledger.purge(before=500, limit=10) == 0
    live = await ledger.load_live(0)
    assert sorted(row.jid for row in live.jobs) == [2, 5] and live.next_jid == 6
    await ledger.apply(FlushBatch(history=[
        finished(5, 3, 10, "canceled", states.CANCELED),
        leased(2, 4, 20, 9_000),  # (the newest history row stays in SQLite: its number)
    ]))  # fmt: skip
    await ledger.compact(100)
    assert await ledger.purge(before=500, limit=10) == 1  # the newest job number goes too
    assert (await ledger.load_live(0)).next_jid == 6  # and is never handed out again
    assert all(isinstance(v, int) for v in (await ledger.stats()).values())
