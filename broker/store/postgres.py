"""The production ledger: PostgreSQL through asyncpg, in the same append-only shape.

A flush is one transaction of two ``COPY``s (new jobs, history rows); the fold
into the jobs table is one ``UPDATE … FROM`` per bounded step, off the hot
path. Schema changes are numbered SQL files (``sql/postgres/NNNN_*.sql``)
applied in order under an advisory lock and recorded in ``schema_version``,
so ``migrate`` is safe to run twice or from two processes at once.

One broker writes a ledger at a time, and its flusher runs writes and folds
one after another, so history sequence numbers commit in order and the fold
watermark never skips a row.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

from . import queries
from .base import PROGRESS_EVERY, Ledger, Progress
from .rows import (
    NO_CURSOR,
    AuditRow,
    FlushBatch,
    HistoryRow,
    JobHistory,
    JobRow,
    LimitRow,
    LiveState,
    RunHistory,
    RunRow,
    read_history,
    read_run_history,
)

_Q = queries.load("broker.store.sql.postgres", "queries.sql")
_MIGRATION = re.compile(r"(\d{4})_[a-z0-9_]+\.sql\Z")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped, in order."""
    folder = resources.files("broker.store.sql.postgres")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database lacks; returns the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute(_Q["lock_migrations"])
        await conn.execute(_Q["create_versions"])
        done = {row[0] for row in await conn.fetch(_Q["applied_versions"])}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(_Q["record_version"], version)
            applied.append(name)
    return applied


class PostgresLedger(Ledger):
    def __init__(self, dsn: str, schema: str | None = None, pool_size: int = 4) -> None:
        self.dsn = dsn
        self.url = _without_password(dsn)
        self.schema = schema
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else None
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self._pool_size, server_settings=settings
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("ledger is not open")
        return self._pool

    async def apply(self, batch: FlushBatch) -> None:
        async with self._db().acquire() as conn, conn.transaction():
            if batch.inserts:
                await conn.copy_records_to_table(
                    "jobs", records=batch.inserts, columns=JobRow._fields,
                    schema_name=self.schema,
                )  # fmt: skip
            if batch.history:
                await conn.copy_records_to_table(
                    "history", records=batch.history, columns=HistoryRow._fields,
                    schema_name=self.schema,
                )  # fmt: skip
            if batch.members:
                await conn.copy_records_to_table(
                    "run_jobs", records=batch.members, columns=("run_id", "jid"),
                    schema_name=self.schema,
                )  # fmt: skip
            if batch.runs:
                await conn.executemany(_Q["upsert_run"], batch.runs)
            if batch.audit:
                await conn.executemany(_Q["append_audit"], batch.audit)
            for limit in batch.limits:
                if limit.config is None:
                    await conn.execute(_Q["delete_limit"], *limit[:3])
                else:
                    await conn.execute(_Q["upsert_limit"], *limit)

    async def compact(self, limit: int) -> int:
        async with self._db().acquire() as conn, conn.transaction():
            start = await conn.fetchval(_Q["folded_upto"])
            last = await conn.fetchval(_Q["last_seq"])
            end = min(last, start + limit)
            if end > start:
                await conn.execute(_Q["fold_range"], start, end)
                await conn.execute(_Q["set_folded"], end)
        return max(0, int(end - start))  # a purge may have taken the newest rows

    async def unfolded(self) -> int:
        async with self._db().acquire() as conn:
            start = await conn.fetchval(_Q["folded_upto"])
            last = await conn.fetchval(_Q["last_seq"])
        return max(0, int(last - start))

    async def load_live(self, keyed_since: int, progress: Progress | None = None) -> LiveState:
        while await self.compact(200_000):
            pass
        async with self._db().acquire() as conn:
            live: list[JobRow] = []
            async with conn.transaction():  # a cursor: large states arrive in chunks
                cursor = await conn.cursor(_Q["live_jobs"])
                while chunk := await cursor.fetch(PROGRESS_EVERY):
                    live.extend(JobRow(*row) for row in chunk)
                    if progress is not None:
                        progress(len(live))
            keyed = [JobRow(*row) for row in await conn.fetch(_Q["recent_keyed_jobs"], keyed_since)]
            max_jid = await conn.fetchval(_Q["max_jid"])
            runs = [RunRow(*row) for row in await conn.fetch(_Q["live_runs"], keyed_since)]
            members = [JobRow(*row) for row in await conn.fetch(_Q["live_run_members"])]
            limits = [LimitRow(*row) for row in await conn.fetch(_Q["all_limits"])]
        return LiveState(live, int(max_jid) + 1, keyed, runs, members, limits)

    async def read_job(self, jid: int) -> JobHistory | None:
        async with self._db().acquire() as conn:
            row = await conn.fetchrow(_Q["read_job"], jid)
            if row is None:
                return None
            history = [HistoryRow(*h) for h in await conn.fetch(_Q["read_history"], jid)]
        return read_history(JobRow(*row), history)

    async def read_run(self, run_id: str) -> RunHistory | None:
        async with self._db().acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(_Q["read_run"], run_id)
            if row is None:
                return None
            jobs = [JobRow(*r) for r in await conn.fetch(_Q["read_run_jobs"], run_id)]
            history = [HistoryRow(*h) for h in await conn.fetch(_Q["read_run_history"], run_id)]
        return read_run_history(RunRow(*row), jobs, history)

    async def list_runs(
        self, tenant: str, status: str | None, before: tuple[int, str] | None, limit: int
    ) -> list[RunRow]:
        created, run_id = before or NO_CURSOR
        async with self._db().acquire() as conn:
            rows = await conn.fetch(_Q["list_runs"], tenant, status, created, run_id, limit)
        return [RunRow(*row) for row in rows]

    async def read_audit(self, tenant: str, limit: int) -> list[AuditRow]:
        async with self._db().acquire() as conn:
            rows = await conn.fetch(_Q["read_audit"], tenant, limit)
        return [AuditRow(*row) for row in rows]

    async def purge(self, before: int, limit: int) -> int:
        async with self._db().acquire() as conn, conn.transaction():
            folded = await conn.fetchval(_Q["folded_upto"])
            await conn.execute(_Q["keep_max_jid"])
            status = await conn.execute(_Q["purge_finished"], before, limit, folded)
        return int(status.split()[-1])

    async def stats(self) -> dict[str, int]:
        async with self._db().acquire(timeout=2) as conn:
            rows = await conn.fetch(_Q["table_stats"])
        figures: dict[str, int] = {}
        for name, live, dead in rows:
            figures[f"{name}.live_tuples"] = int(live)
            figures[f"{name}.dead_tuples"] = int(dead)
        return figures

    async def begin_epoch(self) -> int:
        async with self._db().acquire() as conn:
            return int(await conn.fetchval(_Q["bump_epoch"]))

    async def ping(self) -> bool:
        try:
            async with self._db().acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except (RuntimeError, OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True


def _without_password(dsn: str) -> str:
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", dsn)
