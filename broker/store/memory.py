"""An in-memory ledger: the contract's reference, and a store for unit tests.

It keeps the same append-only shape as the durable stores (a jobs table plus
history rows folded in by ``compact``) and is held to the same contract suite.
"""

from __future__ import annotations

from .. import states
from .base import Ledger, Progress
from .rows import (
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
)


class MemoryLedger(Ledger):
    url = "memory://"

    def __init__(self) -> None:
        self._jobs: dict[int, JobRow] = {}
        self._history: list[HistoryRow] = []
        self._folded = 0  # history rows already folded into _jobs
        self._epoch = 0
        self._open = False
        self._runs: dict[str, RunRow] = {}
        self._run_of: dict[int, str] = {}
        self._audit: list[AuditRow] = []
        self._limits: dict[tuple[str, str, str], LimitRow] = {}
        self._purged_jid = 0  # job numbers are never reused, even after a purge

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def apply(self, batch: FlushBatch) -> None:
        self._require_open()
        new = {row.jid for row in batch.inserts}
        # keys().isdisjoint(new) walks the batch; new.isdisjoint(dict) walked the whole table
        if len(new) != len(batch.inserts) or not self._jobs.keys().isdisjoint(new):
            raise ValueError("a job is inserted twice")
        for event in batch.history:
            if event.jid not in self._jobs and event.jid not in new:
                raise ValueError(f"history of unknown job {event.jid}")
        for row in batch.inserts:
            self._jobs[row.jid] = row
        self._history.extend(batch.history)
        for run in batch.runs:
            known = self._runs.get(run.run_id)
            self._runs[run.run_id] = (
                run if known is None else known._replace(status=run.status, updated=run.updated)
            )
        self._run_of.update((jid, run_id) for run_id, jid in batch.members)
        self._audit.extend(batch.audit)
        for limit in batch.limits:
            if limit.config is None:
                self._limits.pop(limit[:3], None)
            else:
                self._limits[limit[:3]] = limit

    async def compact(self, limit: int) -> int:
        self._require_open()
        rows = self._history[self._folded : self._folded + limit]
        for row in rows:
            self._jobs[row.jid] = fold(self._jobs[row.jid], row)
        self._folded += len(rows)
        return len(rows)

    async def unfolded(self) -> int:
        return len(self._history) - self._folded

    async def load_live(self, keyed_since: int, progress: Progress | None = None) -> LiveState:
        self._require_open()
        while await self.compact(100_000):
            pass
        jobs = sorted(self._jobs.values(), key=lambda row: row.jid)
        live = [row for row in jobs if row.state not in states.TERMINAL]
        keyed = [
            row
            for row in jobs
            if row.state in states.TERMINAL and row.meta is not None and row.updated >= keyed_since
        ]
        live_runs = {self._run_of[row.jid] for row in live if row.jid in self._run_of}
        runs = [
            run
            for run in self._runs.values()
            if run.run_id in live_runs or (run.token is not None and run.created >= keyed_since)
        ]
        members = [
            row
            for row in jobs
            if row.state in states.TERMINAL and self._run_of.get(row.jid) in live_runs
        ]
        limits = [self._limits[key] for key in sorted(self._limits)]
        top = max(max(self._jobs, default=0), self._purged_jid)
        return LiveState(live, top + 1, keyed, runs, members, limits)

    async def read_run(self, run_id: str) -> RunHistory | None:
        self._require_open()
        run = self._runs.get(run_id)
        if run is None:
            return None
        jids = sorted(jid for jid, rid in self._run_of.items() if rid == run_id)
        jobs = [await self.read_job(jid) for jid in jids]
        return RunHistory(run, [job for job in jobs if job is not None])

    async def list_runs(
        self, tenant: str, status: str | None, before: tuple[int, str] | None, limit: int
    ) -> list[RunRow]:
        self._require_open()
        runs = sorted(
            (r for r in self._runs.values() if r.tenant == tenant),
            key=lambda r: (r.created, r.run_id),
            reverse=True,
        )
        return [
            r
            for r in runs
            if (status is None or r.status == status)
            and (before is None or (r.created, r.run_id) < before)
        ][:limit]

    async def read_audit(self, tenant: str, limit: int) -> list[AuditRow]:
        self._require_open()
        return [row for row in reversed(self._audit) if row.tenant == tenant][:limit]

    async def read_job(self, jid: int) -> JobHistory | None:
        self._require_open()
        row = self._jobs.get(jid)
        if row is None:
            return None
        return read_history(row, [h for h in self._history if h.jid == jid])

    async def purge(self, before: int, limit: int) -> int:
        self._require_open()
        pending = {row.jid for row in self._history[self._folded :]}
        doomed = sorted(
            (row.updated, jid)
            for jid, row in self._jobs.items()
            if row.state in states.TERMINAL and row.updated < before and jid not in pending
        )[:limit]
        gone = {jid for _, jid in doomed}
        self._purged_jid = max(self._purged_jid, max(self._jobs, default=0))
        kept = [row for row in self._history[: self._folded] if row.jid not in gone]
        self._history = kept + self._history[self._folded :]
        self._folded = len(kept)
        for jid in gone:
            del self._jobs[jid]
            self._run_of.pop(jid, None)
        return len(gone)

    async def begin_epoch(self) -> int:
        self._require_open()
        self._epoch += 1
        return self._epoch

    async def ping(self) -> bool:
        return self._open

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("ledger is not open")
