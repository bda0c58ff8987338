"""The COPY codec's data, loaded by real Postgres, are the rows asyncpg's own
encoder writes (zeros of ``due``, ``lease_token`` and ``lease_deadline`` as NULL),
whichever twin of the codec wrote them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from broker._native import native, twin
from broker.states import TERMINAL
from broker.store import FlushBatch
from broker.store.postgres import PostgresLedger
from broker.store.rows import HistoryRow
from tests.contract.test_ledger import POSTGRES, job, leased

ROWS = [
    HistoryRow(1, 10, 2, 1, 0, 7, "w-1", 9_000, 0, None, 7, "w-1", 10, 9_000, 0, None, None,
               None, None),
    HistoryRow(2**62, 2**63 - 1, 3, 2**31 - 1, 5, 0, None, 0, -1, "succeeded", 2**63 - 1,
               "wörker ✓", -(2**63), 0, 11, "failed", b'{"class":"x"}', b"\x00\xff", "due"),
    HistoryRow(3, 0, -(2**15), -(2**31), 0, 0, "", 0, 0, "", 0, "", 0, 0, 0, "", b"", b"", ""),
]  # fmt: skip
NULLABLE_ZEROS = ("due", "lease_token", "lease_deadline")


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    name = f"copy_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE SCHEMA "{name}"')
    await admin.close()
    ledger = PostgresLedger(POSTGRES, schema=name)
    await ledger.open()  # the ledger's own migrations make the table
    await ledger.close()
    conn = await asyncpg.connect(POSTGRES, server_settings={"search_path": name})
    yield conn
    await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    await conn.close()


async def stored(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    columns = ", ".join(HistoryRow._fields)
    rows = await conn.fetch(f"SELECT {columns} FROM history ORDER BY seq")
    await conn.execute("TRUNCATE history")
    return [tuple(row) for row in rows]


@pytest.mark.parametrize("kernel", ["native", "twin"])
async def test_copy_data_are_the_rows_asyncpg_writes(conn: asyncpg.Connection, kernel: str) -> None:
    expected_rows = [
        tuple(
            None if name in NULLABLE_ZEROS and value == 0 else value
            for name, value in zip(HistoryRow._fields, row, strict=True)
        )
        for row in ROWS
    ]
    await conn.copy_records_to_table("history", records=expected_rows, columns=HistoryRow._fields)
    expected = await stored(conn)

    codec = (native if kernel == "native" else twin)("copy_codec").CopyCodec()
    data, revived = codec.history(ROWS, 3, TERMINAL)
    await conn.copy_to_table(
        "history", source=memoryview(data), columns=HistoryRow._fields, format="binary"
    )
    assert await stored(conn) == expected
    assert revived == [1]  # below the floor and leased; job 3 is not below it


async def test_a_flush_of_several_statements_commits_whole_or_not_at_all() -> None:
    """New jobs and their history go in one transaction: when the history's COPY
    fails (Postgres refuses a NUL in text), the jobs copied before it are gone too."""
    name = f"atomic_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE SCHEMA "{name}"')
    ledger = PostgresLedger(POSTGRES, schema=name)
    await ledger.open()
    try:
        refused = leased(1, 1, 1, 2)._replace(lease_worker="w\x00")
        with pytest.raises(asyncpg.PostgresError):
            await ledger.apply(FlushBatch(inserts=[job(1), job(2)], history=[refused]))
        assert await ledger.read_job(1) is None and await ledger.read_job(2) is None
        await ledger.apply(FlushBatch(inserts=[job(1)], history=[leased(1, 1, 1, 2)]))
        found = await ledger.read_job(1)
        assert found is not None and found.job.lease_worker == "w"
    finally:
        await ledger.close()
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.close()
