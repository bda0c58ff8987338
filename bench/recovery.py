"""Recovery time against live-job count: a broker restarting on a Postgres ledger.

    python -m bench.recovery [--jobs 1000000] [--store postgresql://postgres@127.0.0.1:5432/postgres]

Creates a fresh database, writes ``--jobs`` live (ready) jobs into it with the
ledger's own ``apply`` (COPY, 50,000 a batch), then times ``Broker.start()``:
loading every live job and rebuilding the hot structures, which is what
stands between a crash and an open port. The progress lines are the broker's
own. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid

import asyncpg

from broker import states
from broker.service import Broker
from broker.store import FlushBatch, JobRow
from broker.store.postgres import PostgresLedger

BATCH = 50_000


def rows(start: int, n: int) -> list[JobRow]:
    return [
        JobRow(
            jid,
            "tenant-a",
            "scan",
            5,
            states.READY,
            0,
            5,
            30_000,
            1_000,
            0,
            b"{}",
            None,
            0,
            0,
            None,
            0,
            0,
            None,
            1_000,
        )  # fmt: skip
        for jid in range(start, start + n)
    ]


async def recovery_seconds(jobs: int, admin: str) -> float:
    """Write ``jobs`` live jobs to a fresh database, time a broker's start on it."""
    name = f"recovery_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        ledger = PostgresLedger(dsn)
        await ledger.open()
        t0 = time.perf_counter()
        for start in range(1, jobs + 1, BATCH):
            await ledger.apply(FlushBatch(inserts=rows(start, min(BATCH, jobs + 1 - start))))
        print(f"wrote {jobs:,} live jobs in {time.perf_counter() - t0:.1f} s")
        await ledger.close()
        broker = Broker(PostgresLedger(dsn))
        t0 = time.perf_counter()
        await broker.start()
        took = time.perf_counter() - t0
        assert len(broker.engine.ready) == jobs
        await broker.stop()
        return took
    finally:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


async def main(jobs: int, admin: str) -> None:
    took = await recovery_seconds(jobs, admin)
    print(f"recovered {jobs:,} live jobs in {took:.1f} s ({jobs / took:,.0f} jobs/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(main(args.jobs, args.store))
