"""The production ledger: PostgreSQL through asyncpg, append-only.

A flush is one transaction of two ``COPY``s (new jobs, history rows), and a
job's row is never updated after its insert: its state is its newest history
row, else its job row. So a completion costs one history row and nothing else
(no fold into the jobs table, whose ``UPDATE`` wrote more WAL than the row).

Finding live jobs at start without ``jobs.state``: the *live floor* (in
``broker_meta``) is a job number below which every job is finished, except
the few in ``live_stragglers``. ``compact`` moves the floor up over windows of
finished jobs off the hot path (a read and one small write); a window with a
few live jobs is passed and they become stragglers, a mostly live one (a
backlog) stops it. A flush that brings an older finished job back to life (a
replay) lists it as a straggler in the same transaction. ``load_live`` reads
the stragglers and the jobs from the floor on, with their newest history rows.

Schema changes are numbered SQL files (``sql/postgres/NNNN_*.sql``) applied in
order under an advisory lock and recorded in ``schema_version``, so ``migrate``
is safe to run twice or from two processes at once. One broker writes a ledger
at a time, and its flusher runs writes, floor moves and purges one after
another, so history sequence numbers commit in order.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import asyncpg

from .._native import CopyCodec
from ..states import TERMINAL
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
    fold,
    read_history,
    read_run_history,
)

_Q = queries.load("broker.store.sql.postgres", "queries.sql")
_HISTORY = CopyCodec()  # history rows -> binary COPY data, in one pass
_MIGRATION = re.compile(r"(\d{4})_[a-z0-9_]+\.sql\Z")
#: the floor passes a window's live jobs (as stragglers) only when they are this rare in it
STRAGGLERS_PER_WINDOW = 0.01
PURGE_WINDOWS = 10  # windows a purge call looks through for jobs past their retention
_UNKNOWN_FLOOR = -1  # the cached floor after a failed compaction: read it again first


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
        self._writer: asyncpg.Connection | None = None  # see _writer_connection
        self._floor = 0  # the live floor (its row in broker_meta is the truth)
        self._purge_from = 0  # where the retention sweep goes on (from the start after a restart)

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else None
        self._writer = None
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self._pool_size,
            server_settings=settings,
            reset=_keep_session,
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)
            self._floor = int(await conn.fetchval(_Q["get_floor"]))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # a flush still writing gives its connection back itself (it finds the pool gone)
        conn, self._writer = self._writer, None
        try:
            if conn is not None:
                await pool.release(conn)
        finally:
            await pool.close()

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("ledger is not open")
        return self._pool

    async def apply(self, batch: FlushBatch) -> None:
        if self._floor == _UNKNOWN_FLOOR:
            async with self._db().acquire() as conn:
                self._floor = int(await conn.fetchval(_Q["get_floor"]))
        history, revived = _HISTORY.history(batch.history, self._floor, TERMINAL)
        statements = (
            bool(batch.inserts) + bool(batch.history) + bool(revived) + bool(batch.members)
            + bool(batch.runs) + bool(batch.audit) + len(batch.limits)
        )  # fmt: skip
        pool = self._db()
        conn = await self._writer_connection(pool)
        try:
            if statements == 1 and not revived:
                # a lone COPY (a drain's history, a submission's jobs) is a
                # transaction of its own, all or nothing and durable when it
                # returns: no BEGIN and COMMIT round trips
                await self._write(conn, batch, history, revived)
            else:
                async with conn.transaction():
                    await self._write(conn, batch, history, revived)
        except BaseException:
            await pool.release(conn)  # the pool replaces a connection that broke
            raise
        if self._writer is None and self._pool is pool and self._pool_size > 2:
            self._writer = conn
        else:  # a small pool (readers need two), a closing ledger, or one kept meanwhile
            await pool.release(conn)

    async def _writer_connection(self, pool: asyncpg.Pool) -> asyncpg.Connection:
        """The connection writes keep between flushes, else one from the pool.

        Kept rather than taken from the pool and given back for every flush:
        asyncpg's acquire and release cost about 50 µs of CPU per flush under a
        drain (a task per release), 0.25 µs per job at 195 jobs a flush
        (throwaway loop of 195-row COPYs: 310–322 µs a flush through the pool,
        245–275 on a kept connection). One the server closed meanwhile (a
        restart, an idle timeout) goes back to the pool, which replaces it."""
        conn, self._writer = self._writer, None
        if conn is not None and _lost(conn):
            await pool.release(conn)  # nothing to do if the pool took it back already
            conn = None
        return conn if conn is not None else await pool.acquire()

    async def _write(
        self,
        conn: asyncpg.Connection,
        batch: FlushBatch,
        history: bytes,
        revived: list[int],
    ) -> None:
        """``history`` is the binary ``COPY`` data of ``batch.history``."""
        if batch.inserts:
            await conn.copy_records_to_table(
                "jobs", records=batch.inserts, columns=JobRow._fields, schema_name=self.schema
            )
        if batch.history:
            await conn.copy_to_table(
                "history", source=memoryview(history), columns=HistoryRow._fields,
                schema_name=self.schema, format="binary",
            )  # fmt: skip
        if revived:  # finished jobs below the floor brought back (a replay)
            await conn.execute(_Q["add_stragglers"], revived)
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
        """Account for up to ``limit`` history rows (the watermark ``unfolded`` counts
        from) and move the live floor up over up to ``limit`` jobs. Writes no job row."""
        try:
            async with self._db().acquire() as conn, conn.transaction():
                start = await conn.fetchval(_Q["folded_upto"])
                last = await conn.fetchval(_Q["last_seq"])
                end = min(last, start + limit)
                if end > start:
                    await conn.execute(_Q["set_folded"], end)
                floor = await self._move_floor(conn, limit)
        except BaseException:
            # the floor may have moved or not (a commit whose answer was lost): the next
            # flush reads it again before it decides which jobs a replay brought back
            self._floor = _UNKNOWN_FLOOR
            raise
        self._floor = floor
        return max(0, int(end - start))  # a purge may have taken the newest rows

    async def _move_floor(self, conn: Any, limit: int) -> int:
        """The floor after one step up (stragglers that finished are let go first).
        It starts from the floor as stored, not as cached: a commit whose answer was
        lost may have moved it."""
        finished = [jid for jid, state in await conn.fetch(_Q["straggler_states"])
                    if state is None or state in TERMINAL]  # fmt: skip
        if finished:
            await conn.execute(_Q["drop_stragglers"], finished)
        stored = int(await conn.fetchval(_Q["get_floor"]))
        window = await conn.fetch(_Q["floor_window"], stored, limit)
        if not window:
            return stored
        live = [jid for jid, state in window if state not in TERMINAL]
        if not live:
            floor = window[-1][0] + 1
        elif len(live) <= len(window) * STRAGGLERS_PER_WINDOW:
            await conn.execute(_Q["add_stragglers"], live)
            floor = window[-1][0] + 1
        else:  # mostly live (a backlog, jobs in flight): stop at the first
            floor = live[0]
        if floor != stored:
            await conn.execute(_Q["set_floor"], floor)
        return int(floor)

    async def unfolded(self) -> int:
        async with self._db().acquire() as conn:
            start = await conn.fetchval(_Q["folded_upto"])
            last = await conn.fetchval(_Q["last_seq"])
        return max(0, int(last - start))

    async def load_live(self, keyed_since: int, progress: Progress | None = None) -> LiveState:
        while await self.compact(200_000):
            pass
        async with self._db().acquire() as conn:
            while True:  # the floor as high as it goes: fewer finished jobs to read past
                async with conn.transaction():
                    floor = await self._move_floor(conn, 200_000)
                moved, self._floor = floor != self._floor, floor
                if not moved:
                    break
            live = await self._stragglers(conn)
            async with conn.transaction():  # cursors: large states arrive in chunks
                jobs = await conn.cursor(_Q["jobs_from"], floor)
                newest = await conn.cursor(_Q["newest_history_from"], floor)
                async for row in _current(_chunks(jobs), _chunks(newest)):
                    if row.state not in TERMINAL:
                        live.append(row)
                        if progress is not None and len(live) % PROGRESS_EVERY == 0:
                            progress(len(live))
            live = sorted({row.jid: row for row in live}.values())  # a straggler may be both
            keyed = [
                row
                for row in (
                    fold(JobRow(*r[:19]), HistoryRow(*r[19:]))
                    for r in await conn.fetch(_Q["recent_keyed_jobs"], keyed_since)
                )
                if row.state in TERMINAL
            ]
            max_jid = await conn.fetchval(_Q["max_jid"])
            live_runs = [r[0] for r in await conn.fetch(_Q["runs_of_jobs"], [j.jid for j in live])]
            runs = [RunRow(*r) for r in await conn.fetch(_Q["live_runs"], live_runs, keyed_since)]
            members = await self._finished_members(conn, live_runs)
            limits = [LimitRow(*row) for row in await conn.fetch(_Q["all_limits"])]
        return LiveState(live, int(max_jid) + 1, keyed, runs, members, limits)

    async def _stragglers(self, conn: Any) -> list[JobRow]:
        """The live jobs below the floor, in their current state."""
        jobs = [JobRow(*row) for row in await conn.fetch(_Q["straggler_jobs"])]
        current = await self._current_of(conn, jobs)
        return [row for row in current if row.state not in TERMINAL]

    async def _finished_members(self, conn: Any, run_ids: list[str]) -> list[JobRow]:
        """The finished jobs of runs that have live ones (their DAG is rebuilt whole)."""
        if not run_ids:
            return []
        jobs = [JobRow(*row) for row in await conn.fetch(_Q["live_run_members"], run_ids)]
        return [row for row in await self._current_of(conn, jobs) if row.state in TERMINAL]

    async def _current_of(self, conn: Any, jobs: list[JobRow]) -> list[JobRow]:
        """``jobs`` (in job-number order) folded with their newest history rows."""
        if not jobs:
            return []
        jids = [job.jid for job in jobs]
        rows = await conn.fetch(_Q["newest_history_of"], jids, jids[0], jids[-1])
        newest = {row[0]: HistoryRow(*row) for row in rows}
        return [fold(job, newest[job.jid]) if job.jid in newest else job for job in jobs]

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
        """Sweep the jobs in job-number order, a window at a time, deleting the
        finished ones last changed before ``before``; at the end of what can be due,
        start over. Job numbers follow creation time, so once a window starts with a
        job created at or after ``before``, nothing further on can be due yet."""
        doomed: list[int] = []
        async with self._db().acquire() as conn, conn.transaction():
            start = self._purge_from
            for _ in range(PURGE_WINDOWS):
                window = await conn.fetch(_Q["purge_window"], start, limit)
                if not window or window[0][3] >= before:
                    start = 0  # swept all that can be due: the next call starts over
                    break
                doomed += [jid for jid, state, changed, _ in window
                           if state in TERMINAL and changed < before]  # fmt: skip
                start = window[-1][0] + 1
                if len(doomed) >= limit:
                    break
            doomed = doomed[:limit]
            if doomed:
                await conn.execute(_Q["keep_max_jid"])
                await conn.execute(_Q["purge_jobs"], doomed, min(doomed), max(doomed))
        self._purge_from = start if len(doomed) < limit else doomed[-1] + 1
        return len(doomed)

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


def _lost(conn: asyncpg.Connection) -> bool:
    """Closed by the server, or already taken back by the pool (asyncpg gives back a
    connection that dies while checked out, and its proxy then refuses every call)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection returned to the pool needs beyond asyncpg's own rollback
    of an open transaction: nothing. The ledger takes no advisory lock, listens to
    nothing, sets nothing and leaves no cursor open, so asyncpg's default reset
    (``RESET ALL``, ``UNLISTEN *``, … in a round trip of its own on every release)
    would only add a round trip to every flush."""


async def _chunks(cursor: Any) -> Any:
    """Rows of an asyncpg cursor, fetched a chunk at a time."""
    while chunk := await cursor.fetch(PROGRESS_EVERY):
        for row in chunk:
            yield row


async def _current(jobs: Any, newest: Any) -> Any:
    """Merge job rows with their newest history rows (both in job-number order) into
    current job rows."""
    history = await anext(newest, None)
    async for raw in jobs:
        job = JobRow(*raw)
        while history is not None and history[0] < job.jid:
            history = await anext(newest, None)  # a purged job's leftovers: none expected
        if history is not None and history[0] == job.jid:
            yield fold(job, HistoryRow(*history))
            history = await anext(newest, None)
        else:
            yield job


def _without_password(dsn: str) -> str:
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", dsn)
