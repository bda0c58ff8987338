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
from ..engine.records import Audited, LimitChanged, RunChanged
from ..states import LEASED, PENDING
from ..store import AuditRow, FlushBatch, HistoryRow, JobRow, LimitRow, RunRow
from .limit_codec import encode_limit
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
        self,
        at: int,
        state: int,
        attempt: int,
        token: int = 0,
        reason: str | None = None,
        worker: str | None = None,
        deadline: int = 0,
    ) -> None:
        self.at = at
        self.state = state
        self.attempt = attempt
        self.token = token
        self.reason = reason
        self.worker = worker
        self.leased_at = at if worker is not None else 0
        self.deadline = deadline
        self.finished = 0
        self.status: str | None = None
        self.due = 0
        self.error: bytes | None = None
        self.output: bytes | None = None


class Journal:
    """``hold_ms``: a claim's row is held back this long (claims are write-behind
    anyway), so that an ack arriving meanwhile is written as the same row: one
    history row per attempt instead of two. A crash loses at most the claims of
    the last ``hold_ms``, whose jobs are simply claimable again after restart."""

    def __init__(self, engine: Engine, hold_ms: int = 0) -> None:
        self.engine = engine
        self.hold_ms = hold_ms
        self._new: dict[int, Job] = {}
        self._touched: dict[int, Job] = {}
        self._events: dict[int, list[_Event]] = {}
        self._runs: dict[str, RunRow] = {}
        self._audit: list[AuditRow] = []
        self._limits: dict[tuple[str, str, str], LimitRow] = {}
        self._now = 0

    def __len__(self) -> int:
        """Jobs (and runs, audit entries) waiting to be written: the flush backlog."""
        writes = len(self._runs) + len(self._audit) + len(self._limits)
        return len(self._new) + len(self._touched) + writes

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
            else:
                self._operator(record)

    def _operator(self, record: Record) -> None:
        """Records that are not about jobs: runs, audit entries, limits."""
        if isinstance(record, RunChanged):
            self._runs[record.run_id] = RunRow(
                record.run_id, record.tenant, record.token, record.created, record.status,
                record.at,
            )  # fmt: skip
        elif isinstance(record, Audited):
            self._audit.append(AuditRow(*record))
        elif isinstance(record, LimitChanged):
            key = (record.kind, record.tenant, record.name)
            config = encode_limit(record.kind, record.config)
            self._limits[key] = LimitRow(*key, config, record.at)

    def cut(self, now: int | None = None, everything: bool = False) -> FlushBatch:
        """What is ready to be written, as rows; claims younger than ``hold_ms`` stay
        (unless ``everything``), the rest of the journal starts empty again."""
        snapshot = self._snapshot
        current_row = self._current_row
        inserts = [snapshot(job) for job in self._new.values()]
        history: list[HistoryRow] = []
        held_events: dict[int, list[_Event]] = {}
        held_jobs: dict[int, Job] = {}
        now = self._now if now is None else now
        hold_from = now - self.hold_ms if self.hold_ms and not everything else None
        new = self._new
        touched = self._touched
        for jid, events in self._events.items():
            if hold_from is not None and jid not in new:
                first = events[0]
                if (
                    not first.finished and first.leased_at and first.leased_at > hold_from
                    if len(events) == 1
                    else _only_fresh_claims(events, hold_from)
                ):
                    held_events[jid] = events
                    held_jobs[jid] = touched[jid]
                    continue
            if len(events) > 1:
                for event in events[:-1]:
                    history.append(_history_row(jid, event, _event_state(event)))
            history.append(current_row(jid, events[-1], touched[jid]))
        members = [
            (job.meta.run_id, job.jid)
            for job in self._new.values()
            if job.meta is not None and job.meta.run_id is not None
        ]
        batch = FlushBatch(
            inserts, history, list(self._runs.values()), members, self._audit,
            list(self._limits.values()),
        )  # fmt: skip
        self._new = {}
        self._touched = held_jobs
        self._events = held_events
        self._runs = {}
        self._audit = []
        self._limits = {}
        return batch

    def due_in_ms(self, now: int) -> int:
        """When the oldest held claim must be written (0: now)."""
        oldest = min((events[0].at for events in self._events.values()), default=now)
        return max(0, oldest + self.hold_ms - now)

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
        worker = record.worker
        lists = self._events
        touched = self._touched
        # once per claimed job: the event list lookup is inlined (see _event_list)
        for job, token, deadline in zip(record.jobs, record.tokens, record.deadlines, strict=True):
            event = _Event(at, LEASED, job.attempt, token, None, worker, deadline)
            jid = job.jid
            events = lists.get(jid)
            if events is None:
                lists[jid] = [event]
                touched[jid] = job
            else:
                events.append(event)

    def _extended(self, record: Extended) -> None:
        jobs = self.engine.jobs
        for jid, token, deadline in zip(record.jids, record.tokens, record.deadlines, strict=True):
            job = jobs.get(jid)
            if job is not None:
                self._attempt(job, token, record.at).deadline = deadline

    def _finished(self, record: Finished) -> None:
        lists = self._events
        for i, job in enumerate(record.jobs):
            token = record.tokens[i]
            events = lists.get(job.jid)
            # mostly the attempt's claim is the job's latest event of this flush
            if events and events[-1].token == token:
                event = events[-1]
            else:
                event = self._attempt(job, token, record.at)
            event.finished = record.at
            event.status = record.statuses[i]
            event.state = record.states[i]
            event.due = record.due[i]
            event.error = record.errors[i]
            event.output = record.outputs[i]

    # -- rows --------------------------------------------------------------------
    def _current_row(self, jid: int, event: _Event, job: Job) -> HistoryRow:
        """The history row of a job's latest event: it carries the job's state as it
        is now (a ``_history_row`` with ``_State`` of the job, built in one go)."""
        state = job.state
        if state == LEASED:
            leases = self.engine.leases
            token = leases.token_of(jid)
            worker: str | None = self.engine.workers.name(leases.worker_of(jid))
            deadline = leases.deadline_of(jid)
            due = 0
        else:
            token, worker, deadline = 0, None, 0
            due = max(self.engine.timers.due_of(jid), 0) if state == PENDING else 0
        return _make_row(
            HistoryRow,
            (jid, event.at, state, job.attempt, due, token, worker, deadline, job.last_token,
             job.last_status or None,
             event.token, event.worker, event.leased_at, event.deadline, event.finished,
             event.status, event.error, event.output, event.reason),
        )  # fmt: skip

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


_State = tuple[int, int, int, int, str | None, int, int, str | None]


def _only_fresh_claims(events: list[_Event], since: int) -> bool:
    """Nothing but open attempts, all started after ``since``."""
    for event in events:
        if event.finished or not event.leased_at or event.leased_at <= since:
            return False
    return True


def _event_state(event: _Event) -> _State:
    """The state right after an event that is not the job's last in the flush."""
    if event.state == LEASED and not event.finished:
        return (LEASED, event.attempt, 0, event.token, event.worker, event.deadline, 0, None)
    if event.finished:
        return (event.state, event.attempt, event.due, 0, None, 0, event.token, event.status)
    return (event.state, event.attempt, event.due, 0, None, 0, 0, None)


_make_row = tuple.__new__  # a HistoryRow from one tuple, without the keyword-aware __new__


def _history_row(jid: int, event: _Event, state: _State) -> HistoryRow:
    return _make_row(
        HistoryRow,
        (jid, event.at, *state,
         event.token, event.worker, event.leased_at, event.deadline, event.finished,
         event.status, event.error, event.output, event.reason),
    )  # fmt: skip
