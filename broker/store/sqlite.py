"""The embedded ledger: SQLite in WAL mode, driven from one worker thread.

Every call runs on a dedicated thread so the event loop never blocks on disk.
A flush is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) of two prepared
``executemany`` inserts: new jobs and history rows. Nothing is updated in
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
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

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

# Binding a parameter that is not exactly int, float or str sends the sqlite3
# module down its adaptation path, which for None and bytes ends in failed
# attribute lookups costing about as much as the rest of the row. An adapter
# registered for them is found at once; it returns the value as it is, so what
# is stored does not change. (The registry is the sqlite3 module's, process-wide;
# identity adapters change nothing for anyone else either.)
sqlite3.register_adapter(type(None), lambda value: value)
sqlite3.register_adapter(bytes, lambda value: value)

_Q = queries.load("broker.store.sql.sqlite", "queries.sql")
_SCHEMA = queries.load("broker.store.sql.sqlite", "schema.sql")["schema"]

# Rows per multi-row INSERT. One statement step per row (executemany) cost a quarter
# more CPU per row than one step per 32 rows (docs/performance.md, session 5); far
# longer statements gained nothing more.
ROWS_PER_INSERT = 32


def _multi_row(statement: str, rows: int) -> str:
    """A one-row ``INSERT … VALUES (?, …)`` of the query files, taking ``rows`` rows:
    its placeholder group repeated (no value is ever put into the SQL)."""
    head, _, group = statement.rpartition("VALUES")
    return f"{head}VALUES {', '.join([group.strip()] * rows)}"


_INSERT_JOBS = _multi_row(_Q["insert_job"], ROWS_PER_INSERT)
_APPEND_HISTORY = _multi_row(_Q["append_history"], ROWS_PER_INSERT)


def _insert(db: sqlite3.Connection, one: str, many: str, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` in order: whole groups by ``many``, the rest one by one."""
    whole = len(rows) - len(rows) % ROWS_PER_INSERT
    for start in range(0, whole, ROWS_PER_INSERT):
        db.execute(many, tuple(chain.from_iterable(rows[start : start + ROWS_PER_INSERT])))
    if whole < len(rows):
        # plain tuples: the sqlite3 module binds a tuple subclass item by item
        # through the sequence protocol, a plain tuple directly
        db.executemany(one, map(tuple, rows[whole:]))


T = TypeVar("T")


class SqliteLedger(Ledger):
    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._synchronous = synchronous.upper()
        self._conn: sqlite3.Connection | None = None
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
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    def _close(self) -> None:
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
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.inserts:
                _insert(db, _Q["insert_job"], _INSERT_JOBS, batch.inserts)
            if batch.history:
                _insert(db, _Q["append_history"], _APPEND_HISTORY, batch.history)
            if batch.runs:
                db.executemany(_Q["upsert_run"], batch.runs)
            if batch.members:
                db.executemany(_Q["insert_member"], batch.members)
            if batch.audit:
                db.executemany(_Q["append_audit"], batch.audit)
            for limit in batch.limits:
                if limit.config is None:
                    db.execute(_Q["delete_limit"], limit[:3])
                else:
                    db.execute(_Q["upsert_limit"], limit)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

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
