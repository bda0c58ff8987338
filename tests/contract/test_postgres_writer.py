"""The connection the Postgres ledger keeps for its flushes: one the server closed
is replaced, and closing the ledger during a flush neither hangs nor loses it."""

from __future__ import annotations

import asyncio

import asyncpg

from broker.store import FlushBatch
from broker.store.postgres import PostgresLedger, _lost
from tests.contract.test_ledger import POSTGRES, job


async def jobs_in(schema: str) -> list[int]:
    conn = await asyncpg.connect(POSTGRES)
    try:
        return [r[0] for r in await conn.fetch(f'SELECT jid FROM "{schema}".jobs ORDER BY 1')]
    finally:
        await conn.close()


async def test_a_flush_after_the_server_closed_the_kept_connection_is_written(schema: str) -> None:
    ledger = PostgresLedger(POSTGRES, schema=schema)
    await ledger.open()
    try:
        await ledger.apply(FlushBatch(inserts=[job(1)]))
        kept = ledger._writer
        assert kept is not None  # kept for the next flush
        pid = kept.get_server_pid()
        assert pid
        admin = await asyncpg.connect(POSTGRES)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(500):  # until the client has read the server's goodbye (a flush
            if _lost(kept):  # before that fails once, and the flusher retries it)
                break
            await asyncio.sleep(0.01)
        assert _lost(kept)
        await ledger.apply(FlushBatch(inserts=[job(2)]))  # no error: a fresh connection
        assert ledger._writer is not None and ledger._writer.get_server_pid() != pid
    finally:
        await ledger.close()
    assert await jobs_in(schema) == [1, 2]


async def test_closing_during_a_flush_waits_for_it_and_leaves_nothing_kept(schema: str) -> None:
    ledger = PostgresLedger(POSTGRES, schema=schema)
    await ledger.open()
    await ledger.apply(FlushBatch(inserts=[job(1)]))
    flush = asyncio.create_task(ledger.apply(FlushBatch(inserts=[job(i) for i in range(2, 2002)])))
    await asyncio.sleep(0)  # the flush has taken the kept connection
    await asyncio.wait_for(ledger.close(), 30)
    await asyncio.wait_for(flush, 30)
    assert ledger._writer is None
    assert len(await jobs_in(schema)) == 2001


async def test_a_pool_of_two_keeps_no_connection(schema: str) -> None:
    ledger = PostgresLedger(POSTGRES, schema=schema, pool_size=2)
    await ledger.open()
    try:
        await ledger.apply(FlushBatch(inserts=[job(1)]))
        assert ledger._writer is None  # readers keep two connections to share
    finally:
        await ledger.close()
