"""The rows a ledger stores: plain tuples, independent of the engine.

The write path is append-only. A flush inserts new jobs (``JobRow``, their
state at that moment) and appends ``HistoryRow``s: one per job the flush
touched (more only when one job went through several attempts in it). The
last history row of a job carries its whole current state, so the current
state of any job is "its newest history row, else its job row". The SQLite
and memory ledgers fold history into the jobs table (``compact``, off the hot
path, never changing what a reader sees); Postgres never updates a job row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class JobRow(NamedTuple):
    """A job: the immutable fields and its state when the row was last written."""

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


class HistoryRow(NamedTuple):
    """One change of one job, append-only, in the order it happened.

    The first group is the job's state right after the change (a fold takes
    the newest row of each job); the second says what happened: an attempt
    (``token`` != 0: opened, extended or finished) or a transition outside an
    attempt (``token`` 0, ``reason`` says why: due, canceled, …).
    """

    jid: int
    at: int
    state: int
    attempt: int
    due: int
    lease_token: int
    lease_worker: str | None
    lease_deadline: int
    last_token: int
    last_status: str | None
    token: int
    worker: str | None
    leased_at: int
    deadline: int
    finished: int
    status: str | None
    error: bytes | None
    output: bytes | None
    reason: str | None


class Attempt(NamedTuple):
    """One attempt as readers see it, folded from its history rows."""

    token: int
    worker: str | None
    leased_at: int
    deadline: int
    finished: int  # 0 while open
    status: str | None  # None while open
    error: bytes | None
    output: bytes | None


class RunRow(NamedTuple):
    """A DAG run: created once, its status upserted when it changes."""

    run_id: str
    tenant: str
    token: str | None
    created: int
    status: str
    updated: int


class AuditRow(NamedTuple):
    """One operator action in the audit log."""

    at: int
    tenant: str
    actor: str
    action: str
    target: str
    reason: str | None
    ticket: str | None


class LimitRow(NamedTuple):
    """An operator's limit: kind ("quota", "source", "weight"), whose, on what, as JSON
    (None: removed, the row is deleted)."""

    kind: str
    tenant: str
    name: str
    config: bytes | None
    updated: int


class Transition(NamedTuple):
    at: int
    state: int
    reason: str


@dataclass(slots=True)
class FlushBatch:
    """Everything one flush writes, in one transaction."""

    inserts: list[JobRow] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)  # upserted by run_id
    members: list[tuple[str, int]] = field(default_factory=list)  # (run_id, jid) of new jobs
    audit: list[AuditRow] = field(default_factory=list)
    limits: list[LimitRow] = field(default_factory=list)  # upserted (deleted when config is None)

    def __len__(self) -> int:
        writes = len(self.runs) + len(self.audit) + len(self.limits)
        return len(self.inserts) + len(self.history) + writes


@dataclass(frozen=True, slots=True)
class JobHistory:
    """A job as ``read_job`` returns it: current state, attempts and transitions."""

    job: JobRow
    attempts: list[Attempt]
    transitions: list[Transition]


@dataclass(frozen=True, slots=True)
class RunHistory:
    """A run as ``read_run`` returns it: its row and every job of it, in id order."""

    run: RunRow
    jobs: list[JobHistory]


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a broker needs to rebuild its hot structures after a restart."""

    jobs: list[JobRow]  # every non-terminal job, current state
    next_jid: int  # above every job id ever stored
    recent_keyed: list[JobRow]  # terminal jobs with meta, finished at or after keyed_since
    runs: list[RunRow] = field(default_factory=list)  # runs with live jobs, recent tokened runs
    run_members: list[JobRow] = field(default_factory=list)  # finished jobs of runs with live ones
    limits: list[LimitRow] = field(default_factory=list)  # every limit in force


def fold(job: JobRow, row: HistoryRow) -> JobRow:
    """The job row updated with the state a history row carries."""
    return job._replace(
        state=row.state,
        attempt=row.attempt,
        due=row.due,
        lease_token=row.lease_token,
        lease_worker=row.lease_worker,
        lease_deadline=row.lease_deadline,
        last_token=row.last_token,
        last_status=row.last_status,
        updated=row.at,
    )


def read_history(job: JobRow, rows: list[HistoryRow]) -> JobHistory:
    """Fold a job's history rows (oldest first) into what ``read_job`` returns."""
    attempts: dict[int, Attempt] = {}
    transitions: list[Transition] = []
    for row in rows:
        if row.token:
            seen = attempts.get(row.token)
            if seen is None:
                seen = Attempt(
                    row.token, row.worker, row.leased_at, row.deadline, 0, None, None, None
                )
            if row.worker and not seen.worker:
                seen = seen._replace(worker=row.worker, leased_at=row.leased_at)
            if row.deadline:
                seen = seen._replace(deadline=row.deadline)
            if row.finished:
                seen = seen._replace(
                    finished=row.finished, status=row.status, error=row.error, output=row.output
                )
            attempts[row.token] = seen
        if row.reason:
            transitions.append(Transition(row.at, row.state, row.reason))
    current = fold(job, rows[-1]) if rows else job
    return JobHistory(current, list(attempts.values()), transitions)


def read_run_history(run: RunRow, jobs: list[JobRow], history: list[HistoryRow]) -> RunHistory:
    """Fold a run's job rows and their history rows (both in jid, then seq order)."""
    by_job: dict[int, list[HistoryRow]] = {}
    for row in history:
        by_job.setdefault(row.jid, []).append(row)
    return RunHistory(run, [read_history(job, by_job.get(job.jid, [])) for job in jobs])


#: the cursor ``list_runs`` starts from when there is none: after every run
NO_CURSOR = (1 << 62, "")
