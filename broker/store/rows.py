"""The rows a ledger stores: plain tuples, independent of the engine.

The service turns the engine's records into these (coalescing repeated
changes to one job inside a flush); a store only persists and loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class JobRow(NamedTuple):
    """A job's current state: one row per job in the jobs table."""

    jid: int
    tenant: str
    job_type: str
    priority: int
    state: int
    attempt: int
    max_attempts: int
    lease_ms: int
    created: int
    not_before: int
    payload: bytes
    meta: bytes | None  # JSON object of the descriptive fields, or None
    due: int  # when a pending job becomes ready (0: not waiting on time)
    lease_token: int  # 0 when not leased
    lease_worker: str | None
    lease_deadline: int
    last_token: int
    last_status: str | None
    updated: int


class AttemptRow(NamedTuple):
    """One attempt of a job, append-only.

    An attempt that starts and ends inside one flush is a single row; one that
    spans flushes appears twice, first open (``finished`` 0) and then closed.
    Readers keep the latest row per (jid, token).
    """

    jid: int
    token: int
    worker: str
    leased_at: int
    deadline: int
    finished: int  # 0 while the attempt is open
    status: str  # '' while open; succeeded | failed | timed_out | canceled | expired
    error: bytes | None
    output: bytes | None


class TransitionRow(NamedTuple):
    """A change of state outside an attempt (timer due, operator cancel)."""

    jid: int
    at: int
    state: int
    reason: str


@dataclass(slots=True)
class FlushBatch:
    """Everything one flush writes, in one transaction."""

    inserts: list[JobRow] = field(default_factory=list)
    updates: list[JobRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    transitions: list[TransitionRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.attempts) + len(self.transitions)


@dataclass(frozen=True, slots=True)
class JobHistory:
    """A job as ``read_job`` returns it: its row, attempts (oldest first) and transitions."""

    job: JobRow
    attempts: list[AttemptRow]
    transitions: list[TransitionRow]


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a broker needs to rebuild its hot structures after a restart."""

    jobs: list[JobRow]  # every non-terminal job
    next_jid: int  # above every job id ever stored
    recent_keyed: list[JobRow]  # terminal jobs with an idempotency key, newest retention window


def latest_attempts(rows: list[AttemptRow]) -> list[AttemptRow]:
    """Fold the rows of each (jid, token) into one, in order of first appearance.

    A later row wins, except that a closing row written after its opening row
    was flushed carries no worker, start or deadline (``worker`` is ''): those
    come from the earlier row.
    """
    latest: dict[tuple[int, int], AttemptRow] = {}
    for row in rows:
        key = (row.jid, row.token)
        earlier = latest.get(key)
        if earlier is not None and row.worker == "":
            row = row._replace(
                worker=earlier.worker, leased_at=earlier.leased_at, deadline=earlier.deadline
            )
        latest[key] = row
    return list(latest.values())
