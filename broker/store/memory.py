"""An in-memory ledger: the contract's reference, and a store for unit tests.

It keeps the same append-only shape as the durable stores (a jobs table plus
history rows folded in by ``compact``) and is held to the same contract suite.
"""

from __future__ import annotations

from .. import states
from .base import Ledger
from .rows import FlushBatch, HistoryRow, JobHistory, JobRow, LiveState, fold, read_history


class MemoryLedger(Ledger):
    url = "memory://"

    def __init__(self) -> None:
        self._jobs: dict[int, JobRow] = {}
        self._history: list[HistoryRow] = []
        self._folded = 0  # history rows already folded into _jobs
        self._epoch = 0
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def apply(self, batch: FlushBatch) -> None:
        self._require_open()
        new = {row.jid for row in batch.inserts}
        if len(new) != len(batch.inserts) or not new.isdisjoint(self._jobs):
            raise ValueError("a job is inserted twice")
        for event in batch.history:
            if event.jid not in self._jobs and event.jid not in new:
                raise ValueError(f"history of unknown job {event.jid}")
        for row in batch.inserts:
            self._jobs[row.jid] = row
        self._history.extend(batch.history)

    async def compact(self, limit: int) -> int:
        self._require_open()
        rows = self._history[self._folded : self._folded + limit]
        for row in rows:
            self._jobs[row.jid] = fold(self._jobs[row.jid], row)
        self._folded += len(rows)
        return len(rows)

    async def unfolded(self) -> int:
        return len(self._history) - self._folded

    async def load_live(self, keyed_since: int) -> LiveState:
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
        return LiveState(live, max(self._jobs, default=0) + 1, keyed)

    async def read_job(self, jid: int) -> JobHistory | None:
        self._require_open()
        row = self._jobs.get(jid)
        if row is None:
            return None
        return read_history(row, [h for h in self._history if h.jid == jid])

    async def begin_epoch(self) -> int:
        self._require_open()
        self._epoch += 1
        return self._epoch

    async def ping(self) -> bool:
        return self._open

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("ledger is not open")
