"""The ledger interface: small, batch-only, entity-first.

A ledger persists what the engine decided; it never decides anything. One
contract suite (``tests/contract``) holds every implementation to the same
behaviour.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from .rows import AuditRow, FlushBatch, JobHistory, LiveState, RunHistory, RunRow

#: called with the number of live jobs read so far while a large state loads
Progress = Callable[[int], None]
PROGRESS_EVERY = 100_000


class Ledger(abc.ABC):
    """Where jobs, attempts and transitions are kept durable."""

    #: where the ledger lives, for messages (never a secret)
    url: str = ""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def apply(self, batch: FlushBatch) -> None:
        """Write a whole flush in one transaction: insert the new jobs, append
        the history rows, upsert the runs, record run membership and audit
        entries. No job row is updated in place here."""

    @abc.abstractmethod
    async def compact(self, limit: int) -> int:
        """Upkeep off the hot path over up to ``limit`` history rows written since
        the last call (SQLite, memory: fold them into the jobs table; Postgres:
        move its live floor); returns how many were taken, 0 when nothing is
        left. Readers see the same state before and after."""

    @abc.abstractmethod
    async def unfolded(self) -> int:
        """History rows written since ``compact`` last took them."""

    @abc.abstractmethod
    async def load_live(self, keyed_since: int, progress: Progress | None = None) -> LiveState:
        """Every non-terminal job in its current state, the next free job id,
        terminal jobs with metadata that finished at or after ``keyed_since``
        (ms), the runs of live jobs plus runs with a token created since
        ``keyed_since``, and the finished jobs of runs that have live ones."""

    @abc.abstractmethod
    async def read_job(self, jid: int) -> JobHistory | None:
        """One job in its current state with its attempts and transitions, or None."""

    @abc.abstractmethod
    async def read_run(self, run_id: str) -> RunHistory | None:
        """A run with every job of it (current state, attempts, transitions), or None."""

    @abc.abstractmethod
    async def list_runs(
        self, tenant: str, status: str | None, before: tuple[int, str] | None, limit: int
    ) -> list[RunRow]:
        """A tenant's runs, newest first (created, then run id, descending), only
        those with ``status`` when given, starting after the cursor ``before``."""

    @abc.abstractmethod
    async def read_audit(self, tenant: str, limit: int) -> list[AuditRow]:
        """A tenant's newest audit entries, newest first."""

    @abc.abstractmethod
    async def purge(self, before: int, limit: int) -> int:
        """Delete up to ``limit`` finished jobs last changed before ``before`` (ms),
        oldest first, with their history and run membership; only jobs whose
        history is folded. Returns how many were deleted."""

    async def stats(self) -> dict[str, int]:
        """Figures about the store for metrics (e.g. ``jobs.dead_tuples``)."""
        return {}

    @abc.abstractmethod
    async def begin_epoch(self) -> int:
        """Durably count this start and return its number (1, 2, …).

        Fencing tokens are drawn above ``epoch << 40`` so that no token issued
        before a crash, even one never flushed, can be issued again."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store answers (readiness)."""
