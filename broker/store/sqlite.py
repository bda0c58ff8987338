"""The embedded ledger: SQLite in WAL mode, driven from one worker thread.

Every call runs on a dedicated thread so the event loop never blocks on disk.
A flush is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) of prepared
inserts, mostly new jobs and history rows, written by the ``SqliteWriter``
kernel on a connection of its own (the compiled one binds and commits with
the GIL released; reads and upkeep use the sqlite3 module's connection).
Nothing is updated in
place on the hot path (an UPDATE rewrites the whole row, payload included);
``compact`` folds history into the jobs table in bounded steps instead.
``synchronous=FULL`` by default: a commit that was answered survives a power
cut, not only a killed process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .._native import SqliteWriter
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

_Q = queries.load("broker.store.sql.sqlite", "queries.sql")
_SCHEMA = queries.load("broker.store.sql.sqlite", "schema.sql")["schema"]


T = TypeVar("T")


class SqliteLedger(Ledger):
    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._synchronous = synchronous.upper()
        self._conn: sqlite3.Connection | None = None
        self._writer: SqliteWriter | None = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle ------------------------------------------------------------
    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-ledger")
        await self._run(self._open)

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            self._writer = SqliteWriter(str(self.path), self._synchronous)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise RuntimeError("ledger is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("ledger is not open")
        return self._conn

    # -- writes -----------------------------------------------------------------
    async def apply(self, batch: FlushBatch) -> None:
        await self._run(self._apply, batch)

    def _apply(self, batch: FlushBatch) -> None:
        if self._writer is None:
            raise RuntimeError("ledger is not open")
        steps: list[tuple[str, Sequence[Sequence[Any]]]] = []
        for query, rows in (
            ("insert_job", batch.inserts),
            ("append_history", batch.history),
            ("upsert_run", batch.runs),
            ("insert_member", batch.members),
            ("append_audit", batch.audit),
        ):
            if rows:
                steps.append((_Q[query], rows))
        for limit in batch.limits:  # in order: a delete and a later upsert of one limit
            if limit.config is None:
                steps.append((_Q["delete_limit"], [limit[:3]]))
            else:
                steps.append((_Q["upsert_limit"], [limit]))
        self._writer.write(steps)

    async def compact(self, limit: int) -> int:
        return await self._run(self._compact, limit)

    def _compact(self, limit: int) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            (start,) = db.execute(_Q["folded_upto"]).fetchone()
            (last,) = db.execute(_Q["last_seq"]).fetchone()
            end = min(last, start + limit)
            if end > start:
                db.execute(_Q["fold_range"], (start, end))
                db.execute(_Q["set_folded"], (end,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return max(0, int(end - start))  # a purge may have taken the newest rows

    async def unfolded(self) -> int:
        return await self._run(self._unfolded)

    def _unfolded(self) -> int:
        db = self._db()
        (start,) = db.execute(_Q["folded_upto"]).fetchone()
        (last,) = db.execute(_Q["last_seq"]).fetchone()
        return max(0, int(last - start))

    async def purge(self, before: int, limit: int) -> int:
        return await self._run(self._purge, before, limit)

    def _purge(self, before: int, limit: int) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            (folded,) = db.execute(_Q["folded_upto"]).fetchone()
            doomed = db.execute(_Q["doomed_jobs"], (before, limit, folded)).fetchall()
            db.execute(_Q["keep_max_jid"])
            for query in ("delete_job_history", "delete_job_membership", "delete_job"):
                db.executemany(_Q[query], doomed)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(doomed)

    async def stats(self) -> dict[str, int]:
        (pages,) = await self._run(lambda: self._db().execute(_Q["freelist"]).fetchone())
        return {"file.free_pages": int(pages)}

    async def begin_epoch(self) -> int:
        return await self._run(self._begin_epoch)

    def _begin_epoch(self) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            (epoch,) = db.execute(_Q["bump_epoch"]).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(epoch)

    # -- reads ------------------------------------------------------------------
    async def load_live(self, keyed_since: int, progress: Progress | None = None) -> LiveState:
        return await self._run(self._load_live, keyed_since, progress)

    def _load_live(self, keyed_since: int, progress: Progress | None) -> LiveState:
        while self._compact(200_000):
            pass
        db = self._db()
        live: list[JobRow] = []
        rows = db.execute(_Q["live_jobs"])
        while chunk := rows.fetchmany(PROGRESS_EVERY):
            live.extend(JobRow(*row) for row in chunk)
            if progress is not None:
                progress(len(live))  # (from the ledger's thread: a log line only)
        keyed = [JobRow(*row) for row in db.execute(_Q["recent_keyed_jobs"], (keyed_since,))]
        (max_jid,) = db.execute(_Q["max_jid"]).fetchone()
        runs = [RunRow(*row) for row in db.execute(_Q["live_runs"], (keyed_since,))]
        members = [JobRow(*row) for row in db.execute(_Q["live_run_members"])]
        limits = [LimitRow(*row) for row in db.execute(_Q["all_limits"])]
        return LiveState(live, int(max_jid) + 1, keyed, runs, members, limits)

    async def read_job(self, jid: int) -> JobHistory | None:
        return await self._run(self._read_job, jid)

    def _read_job(self, jid: int) -> JobHistory | None:
        db = self._db()
        row = db.execute(_Q["read_job"], (jid,)).fetchone()
        if row is None:
            return None
        history = [HistoryRow(*h) for h in db.execute(_Q["read_history"], (jid,))]
        return read_history(JobRow(*row), history)

    async def read_run(self, run_id: str) -> RunHistory | None:
        return await self._run(self._read_run, run_id)

    def _read_run(self, run_id: str) -> RunHistory | None:
        db = self._db()
        db.execute("BEGIN")  # one snapshot for the run, its jobs and their history
        try:
            row = db.execute(_Q["read_run"], (run_id,)).fetchone()
            if row is None:
                return None
            jobs = [JobRow(*r) for r in db.execute(_Q["read_run_jobs"], (run_id,))]
            history = [HistoryRow(*h) for h in db.execute(_Q["read_run_history"], (run_id,))]
        finally:
            db.execute("COMMIT")
        return read_run_history(RunRow(*row), jobs, history)

    async def list_runs(
        self, tenant: str, status: str | None, before: tuple[int, str] | None, limit: int
    ) -> list[RunRow]:
        created, run_id = before or NO_CURSOR
        args = (tenant, status, created, run_id, limit)
        rows = await self._run(lambda: self._db().execute(_Q["list_runs"], args).fetchall())
        return [RunRow(*row) for row in rows]

    async def read_audit(self, tenant: str, limit: int) -> list[AuditRow]:
        args = (tenant, limit)
        rows = await self._run(lambda: self._db().execute(_Q["read_audit"], args).fetchall())
        return [AuditRow(*row) for row in rows]

    async def ping(self) -> bool:
        try:
            await self._run(lambda: self._db().execute("SELECT 1").fetchone())
        except (RuntimeError, sqlite3.Error):
            return False
        return True
