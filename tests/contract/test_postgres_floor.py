"""The Postgres ledger's live floor: no job row is updated, yet restarts find live jobs.

Below the floor every job is finished but the stragglers; ``compact`` moves the
floor over windows of finished jobs, passes a window's few live jobs (they
become stragglers) and stops at a backlog; a replay of a job below the floor
lists it as a straggler in its own flush.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from broker import states
from broker.store import FlushBatch
from broker.store.postgres import PostgresLedger
from tests.contract.test_ledger import POSTGRES, finished, job, leased, transition


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = f"floor_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES)
    await conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    await conn.close()


async def look(ledger: PostgresLedger) -> tuple[int, list[int], list[int]]:
    """(floor, stragglers, live jobs) as the ledger keeps them."""
    async with ledger._db().acquire() as conn:
        floor = await conn.fetchval("SELECT value FROM broker_meta WHERE key = 'live_floor'")
        stragglers = [r[0] for r in await conn.fetch("SELECT jid FROM live_stragglers ORDER BY 1")]
    live = [row.jid for row in (await ledger.load_live(0)).jobs]
    return floor or 0, stragglers, live


async def test_the_floor_passes_finished_jobs_and_keeps_live_ones(schema: str) -> None:
    ledger = PostgresLedger(POSTGRES, schema=schema)
    await ledger.open()
    try:
        await ledger.apply(FlushBatch(inserts=[job(i) for i in range(1, 301)]))
        await ledger.apply(FlushBatch(history=[
            finished(i, i, 50, "succeeded", states.SUCCEEDED) for i in range(1, 301) if i != 150
        ] + [leased(150, 7, 60, 9_000)]))  # fmt: skip
        await ledger.compact(1_000)
        # one live job in 300 is rare enough to pass: it becomes a straggler
        assert await look(ledger) == (301, [150], [150])
        (row,) = (await ledger.load_live(0)).jobs
        assert (row.state, row.lease_token, row.lease_deadline) == (states.LEASED, 7, 9_000)

        await ledger.apply(
            FlushBatch(history=[finished(150, 7, 70, "succeeded", states.SUCCEEDED)])
        )
        await ledger.compact(1_000)
        assert await look(ledger) == (301, [], [])  # finished: let go

        # a replay brings job 10 back: listed in the same flush, before any compaction
        await ledger.apply(FlushBatch(history=[transition(10, 80, states.READY, "replayed")]))
        assert await look(ledger) == (301, [10], [10])

        # a backlog stops the floor at its first live job
        await ledger.apply(FlushBatch(inserts=[job(i) for i in range(301, 401)]))
        await ledger.apply(FlushBatch(history=[
            finished(i, i, 90, "succeeded", states.SUCCEEDED) for i in range(301, 311)
        ]))  # fmt: skip
        await ledger.compact(1_000)
        floor, stragglers, live = await look(ledger)
        assert (floor, stragglers) == (311, [10]) and live == [10, *range(311, 401)]
    finally:
        await ledger.close()

    again = PostgresLedger(POSTGRES, schema=schema)  # a restart reads the same floor
    await again.open()
    try:
        assert await look(again) == (311, [10], [10, *range(311, 401)])
        async with again._db().acquire() as conn:
            # no job row was ever updated: every job kept the state it was inserted with
            states_kept = {r[0] for r in await conn.fetch("SELECT DISTINCT state FROM jobs")}
        assert states_kept == {states.READY}
    finally:
        await again.close()
