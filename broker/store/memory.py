"""An in-memory ledger: the contract's reference, and a store for unit tests.

It is held to exactly the same contract suite as the durable stores.
"""

from __future__ import annotations

from .. import states
from .base import Ledger
from .rows import (
    AttemptRow,
    FlushBatch,
    JobHistory,
    JobRow,
    LiveState,
    TransitionRow,
    latest_attempts,
)


class MemoryLedger(Ledger):
    url = "memory://"

    def __init__(self) -> None:
        self._jobs: dict[int, JobRow] = {}
        self._attempts: list[AttemptRow] = []
        self._transitions: list[TransitionRow] = []
        self._epoch = 0
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def apply(self, batch: FlushBatch) -> None:
        self._require_open()
        for row in batch.inserts:
            if row.jid in self._jobs:
                raise ValueError(f"job {row.jid} already stored")
        for row in batch.updates:
            if row.jid not in self._jobs and row.jid not in {r.jid for r in batch.inserts}:
                raise ValueError(f"job {row.jid} is not stored")
        for row in batch.inserts:
            self._jobs[row.jid] = row
        for row in batch.updates:
            self._jobs[row.jid] = row
        self._attempts.extend(batch.attempts)
        self._transitions.extend(batch.transitions)

    async def load_live(self, keyed_since: int) -> LiveState:
        self._require_open()
        live = [row for row in self._jobs.values() if row.state not in states.TERMINAL]
        keyed = [
            row
            for row in self._jobs.values()
            if row.state in states.TERMINAL and row.meta is not None and row.updated >= keyed_since
        ]
        live.sort(key=lambda row: row.jid)
        keyed.sort(key=lambda row: row.jid)
        return LiveState(live, max(self._jobs, default=0) + 1, keyed)

    async def read_job(self, jid: int) -> JobHistory | None:
        self._require_open()
        row = self._jobs.get(jid)
        if row is None:
            return None
        attempts = latest_attempts([a for a in self._attempts if a.jid == jid])
        transitions = [t for t in self._transitions if t.jid == jid]
        return JobHistory(row, attempts, transitions)

    async def begin_epoch(self) -> int:
        self._require_open()
        self._epoch += 1
        return self._epoch

    async def ping(self) -> bool:
        return self._open

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("ledger is not open")
