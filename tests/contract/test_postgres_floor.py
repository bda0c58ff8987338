"""The Postgres ledger's live floor (no job row is updated, yet restarts find live
jobs) and the views that give SQL readers what is not written as a table.

Below the floor every job is finished but the stragglers; ``compact`` moves the
floor over windows of finished jobs, passes a window's few live jobs (they
become stragglers) and stops at a backlog; a replay of a job below the floor
lists it as a straggler in its own flush.
"""

from __future__ import annotations

import orjson

from broker import states
from broker.store import FlushBatch, LimitRow
from broker.store.postgres import PostgresLedger
from tests.contract.test_ledger import POSTGRES, finished, job, leased, transition


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


async def test_views_show_current_state_keys_edges_artifacts_and_limits(schema: str) -> None:
    """SQL readers get the relations the broker does not write as tables (0007)."""
    ledger = PostgresLedger(POSTGRES, schema=schema)
    await ledger.open()
    artifact = {"uri": "cas://a", "digest": "sha256:" + "0" * 64, "mime": "application/json"}
    output = orjson.dumps({"output": {"ok": 1}, "artifacts": [artifact]})
    try:
        await ledger.apply(FlushBatch(
            inserts=[
                job(1, meta=b'{"idempotencyKey":"k1"}'),
                job(2, meta=b'{"runId":"r","key":"b","parents":[1]}'),
                job(3, state=states.PENDING, due=7_000),
            ],
            limits=[
                LimitRow("quota", "t", "scan", b'{"maxActive":3}', 5),
                LimitRow("source", "t", "nvd.nist.gov", b'{"rate":2.5}', 6),
            ],
        ))  # fmt: skip
        await ledger.apply(FlushBatch(history=[
            finished(1, 11, 40, "succeeded", states.SUCCEEDED, output=output),
            leased(2, 12, 50, 9_000),
        ]))  # fmt: skip
        async with ledger._db().acquire() as conn:
            now = {r["jid"]: r for r in await conn.fetch("SELECT * FROM jobs_now ORDER BY jid")}
            keys = await conn.fetch("SELECT tenant, idempotency_key, jid FROM idempotency_keys")
            edges = await conn.fetch("SELECT parent, child FROM dag_edges")
            found = await conn.fetch("SELECT jid, token, uri, digest, mime FROM artifacts")
            quotas = await conn.fetch("SELECT tenant, job_type, config FROM quotas")
            sources = await conn.fetch("SELECT tenant, host, config FROM sources")
        for jid in (1, 2, 3):  # the view says what read_job says
            read = await ledger.read_job(jid)
            assert read is not None and tuple(now[jid]) == tuple(read.job)
        assert (now[1]["state"], now[2]["lease_token"], now[3]["due"]) == (
            states.SUCCEEDED, 12, 7_000,
        )  # fmt: skip
        assert [tuple(r) for r in keys] == [("t", "k1", 1)]
        assert [tuple(r) for r in edges] == [(1, 2)]
        assert [tuple(r) for r in found] == [
            (1, 11, "cas://a", artifact["digest"], artifact["mime"])
        ]
        assert [(r[0], r[1], orjson.loads(r[2])) for r in quotas] == [
            ("t", "scan", {"maxActive": 3})
        ]
        assert [(r[0], r[1], orjson.loads(r[2])) for r in sources] == [
            ("t", "nvd.nist.gov", {"rate": 2.5})
        ]
    finally:
        await ledger.close()


async def test_the_retention_sweep_starts_over_before_young_jobs(schema: str) -> None:
    """Job numbers follow creation time: once the sweep reaches jobs created after the
    cutoff it starts over, so jobs that come due later are found on the next pass."""
    ledger = PostgresLedger(POSTGRES, schema=schema)
    await ledger.open()
    try:
        old = [job(i, created=100) for i in range(1, 21)]
        young = [job(i, created=900) for i in range(21, 31)]
        await ledger.apply(FlushBatch(inserts=old + young))
        await ledger.apply(FlushBatch(history=[
            finished(i, i, 150 if i <= 20 else 950, "succeeded", states.SUCCEEDED)
            for i in range(1, 31)
        ]))  # fmt: skip
        assert [await ledger.purge(before=500, limit=5) for _ in range(5)] == [5, 5, 5, 5, 0]
        assert await ledger.purge(before=1_000, limit=100) == 10  # from the start again
        assert (await ledger.load_live(0)).next_jid == 31
    finally:
        await ledger.close()
