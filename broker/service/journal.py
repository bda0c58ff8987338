"""The journal: engine records waiting for the next flush, coalesced per job.

Between two flushes each touched job is remembered once; when the flush is
cut, its row is built from the job's state *at that moment* (so a job
submitted, claimed and completed inside one flush is one insert), and each
attempt becomes one row however many records spoke of it. Everything here
runs on the event-loop thread, so the snapshot is consistent without locks.
"""

from __future__ import annotations

from ..engine import Changed, Engine, Extended, Finished, Job, Leased, Record, Submitted
from ..states import LEASED, PENDING
from ..store import AttemptRow, FlushBatch, JobRow, TransitionRow
from .meta_codec import encode_meta


class Journal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._new: dict[int, Job] = {}
        self._changed: dict[int, Job] = {}
        # (jid, token) -> [jid, token, worker, leased_at, deadline, finished, status, error, output]
        self._attempts: dict[tuple[int, int], list[object]] = {}
        self._transitions: list[TransitionRow] = []
        self._now = 0

    def __len__(self) -> int:
        """Jobs and attempts waiting to be written (the flush backlog)."""
        return len(self._new) + len(self._changed) + len(self._attempts) + len(self._transitions)

    def add(self, records: list[Record]) -> None:
        for record in records:
            self._now = max(self._now, record.at)
            if isinstance(record, Submitted):
                for job in record.jobs:
                    self._new[job.jid] = job
            elif isinstance(record, Leased):
                self._leased(record)
            elif isinstance(record, Finished):
                self._finished(record)
            elif isinstance(record, Extended):
                for jid in record.jids:
                    self._touch_jid(jid)
            elif isinstance(record, Changed):
                for job in record.jobs:
                    self._touch(job)
                    self._transitions.append(
                        TransitionRow(job.jid, record.at, record.state, record.reason)
                    )

    def cut(self) -> FlushBatch:
        """Everything gathered so far, as rows; the journal starts empty again."""
        row = self._row
        batch = FlushBatch(
            inserts=[row(job) for job in self._new.values()],
            updates=[row(job) for jid, job in self._changed.items() if jid not in self._new],
            attempts=[AttemptRow(*fields) for fields in self._attempts.values()],  # type: ignore[arg-type]
            transitions=self._transitions,
        )
        self._new = {}
        self._changed = {}
        self._attempts = {}
        self._transitions = []
        return batch

    # -- records -----------------------------------------------------------------
    def _touch(self, job: Job) -> None:
        if job.jid not in self._new:
            self._changed[job.jid] = job

    def _touch_jid(self, jid: int) -> None:
        job = self.engine.jobs.get(jid)
        if job is not None:
            self._touch(job)

    def _leased(self, record: Leased) -> None:
        attempts = self._attempts
        deadline = record.deadline
        for job, token in zip(record.jobs, record.tokens, strict=True):
            self._touch(job)
            attempts[(job.jid, token)] = [
                job.jid,
                token,
                record.worker,
                record.at,
                deadline,
                0,
                "",
                None,
                None,
            ]

    def _finished(self, record: Finished) -> None:
        attempts = self._attempts
        for i, job in enumerate(record.jobs):
            self._touch(job)
            token = record.tokens[i]
            fields = attempts.get((job.jid, token))
            if fields is None:
                # the attempt's opening row went out in an earlier flush: this
                # closing row carries the outcome, readers merge the two
                fields = attempts[(job.jid, token)] = [job.jid, token, "", 0, 0, 0, "", None, None]
            fields[5] = record.at
            fields[6] = record.statuses[i]
            fields[7] = record.errors[i]
            fields[8] = record.outputs[i]

    # -- rows --------------------------------------------------------------------
    def _row(self, job: Job) -> JobRow:
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
