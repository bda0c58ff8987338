"""The journal: engine records waiting for the next flush, coalesced per job.

Between two flushes each touched job keeps an ordered list of what happened
to it: attempts (opened, extended, finished) and transitions. Records about
one attempt are merged into one entry, so a claim and its ack inside one
flush are one history row. When the flush is cut, each job's last row
carries its whole state *at that moment* (read from the engine), which is
what a reader folds; earlier rows carry the state right after their own
event, for the audit trail. A job submitted in the flush is also inserted,
with the same snapshot. Everything runs on the event-loop thread, so the
snapshot is consistent without locks.
"""

from __future__ import annotations

from ..engine import Changed, Engine, Extended, Finished, Job, Leased, Record, Submitted
from ..states import LEASED, PENDING
from ..store import FlushBatch, HistoryRow, JobRow
from .meta_codec import encode_meta


class _Event:
    """One entry of a job's list: an attempt (token != 0) or a transition."""

    __slots__ = (
        "at",
        "attempt",
        "deadline",
        "due",
        "error",
        "finished",
        "leased_at",
        "output",
        "reason",
        "state",
        "status",
        "token",
        "worker",
    )

    def __init__(
        self, at: int, state: int, attempt: int, token: int = 0, reason: str | None = None
    ) -> None:
        self.at = at
        self.state = state
        self.attempt = attempt
        self.token = token
        self.reason = reason
        self.worker: str | None = None
        self.leased_at = 0
        self.deadline = 0
        self.finished = 0
        self.status: str | None = None
        self.due = 0
        self.error: bytes | None = None
        self.output: bytes | None = None


class Journal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._new: dict[int, Job] = {}
        self._touched: dict[int, Job] = {}
        self._events: dict[int, list[_Event]] = {}
        self._now = 0

    def __len__(self) -> int:
        """Jobs waiting to be written (the flush backlog, in jobs)."""
        return len(self._new) + len(self._touched)

    def add(self, records: list[Record]) -> None:
        for record in records:
            if record.at > self._now:
                self._now = record.at
            if isinstance(record, Submitted):
                for job in record.jobs:
                    self._new[job.jid] = job
            elif isinstance(record, Leased):
                self._leased(record)
            elif isinstance(record, Finished):
                self._finished(record)
            elif isinstance(record, Extended):
                self._extended(record)
            elif isinstance(record, Changed):
                for job in record.jobs:
                    event = _Event(record.at, record.state, job.attempt, reason=record.reason)
                    self._event_list(job).append(event)

    def cut(self) -> FlushBatch:
        """Everything gathered so far, as rows; the journal starts empty again."""
        snapshot = self._snapshot
        inserts = [snapshot(job) for job in self._new.values()]
        history: list[HistoryRow] = []
        for jid, events in self._events.items():
            last = snapshot(self._touched[jid])
            for event in events[:-1]:
                history.append(_history_row(jid, event, None))
            history.append(_history_row(jid, events[-1], last))
        self._new = {}
        self._touched = {}
        self._events = {}
        return FlushBatch(inserts, history)

    # -- records -----------------------------------------------------------------
    def _event_list(self, job: Job) -> list[_Event]:
        events = self._events.get(job.jid)
        if events is None:
            events = self._events[job.jid] = []
            self._touched[job.jid] = job
        return events

    def _attempt(self, job: Job, token: int, at: int) -> _Event:
        """The entry of this attempt in this flush, made if the flush has none yet."""
        events = self._event_list(job)
        for event in reversed(events):
            if event.token == token:
                return event
        event = _Event(at, LEASED, job.attempt, token)
        events.append(event)
        return event

    def _leased(self, record: Leased) -> None:
        at = record.at
        deadline = record.deadline
        worker = record.worker
        for job, token in zip(record.jobs, record.tokens, strict=True):
            event = _Event(at, LEASED, job.attempt, token)
            event.worker = worker
            event.leased_at = at
            event.deadline = deadline
            self._event_list(job).append(event)

    def _extended(self, record: Extended) -> None:
        jobs = self.engine.jobs
        for jid, token in zip(record.jids, record.tokens, strict=True):
            job = jobs.get(jid)
            if job is not None:
                self._attempt(job, token, record.at).deadline = record.deadline

    def _finished(self, record: Finished) -> None:
        for i, job in enumerate(record.jobs):
            event = self._attempt(job, record.tokens[i], record.at)
            event.finished = record.at
            event.status = record.statuses[i]
            event.state = record.states[i]
            event.due = record.due[i]
            event.error = record.errors[i]
            event.output = record.outputs[i]

    # -- rows --------------------------------------------------------------------
    def _snapshot(self, job: Job) -> JobRow:
        engine = self.engine
        state = job.state
        jid = job.jid
        if state == LEASED:
            leases = engine.leases
            token = leases.token_of(jid)
            worker: str | None = engine.workers.name(leases.worker_of(jid))
            deadline = leases.deadline_of(jid)
        else:
            token, worker, deadline = 0, None, 0
        due = engine.timers.due_of(jid) if state == PENDING else 0
        return JobRow(
            jid,
            engine.tenants.name(job.tenant),
            engine.job_types.name(job.jtype),
            job.priority,
            state,
            job.attempt,
            job.max_attempts,
            job.lease_ms,
            job.created,
            job.not_before,
            job.payload,
            encode_meta(job.meta),
            max(due, 0),
            token,
            worker,
            deadline,
            job.last_token,
            job.last_status or None,
            self._now,
        )


def _history_row(jid: int, event: _Event, current: JobRow | None) -> HistoryRow:
    """A history row; ``current`` (the job's snapshot) only for its last row of the flush."""
    if current is not None:
        state, attempt, due = current.state, current.attempt, current.due
        lease = (current.lease_token, current.lease_worker, current.lease_deadline)
        last = (current.last_token, current.last_status)
    else:
        state, attempt, due = event.state, event.attempt, event.due
        leased = event.state == LEASED and not event.finished
        lease = (event.token, event.worker, event.deadline) if leased else (0, None, 0)
        last = (event.token, event.status) if event.finished else (0, None)
    return HistoryRow(
        jid,
        event.at,
        state,
        attempt,
        due,
        *lease,
        *last,
        event.token,
        event.worker,
        event.leased_at,
        event.deadline,
        event.finished,
        event.status,
        event.error,
        event.output,
        event.reason,
    )
