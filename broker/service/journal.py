"""The journal: engine records waiting for the next flush, coalesced per job.

Between two flushes each touched job keeps an ordered list of what happened
to it: attempts (opened, extended, finished) and transitions, in the attempt
log kernel (``broker/_native/attempt_log``: a claim and its ack are one struct
there, where they were a dict entry, a list and an object per job in Python).
Records about one attempt are merged into one entry, so a claim and its ack
inside one flush are one history row. When the flush is cut, each job's last
row carries its whole state *at that moment* (read from the engine), which is
what a reader folds; earlier rows carry the state right after their own
event, for the audit trail. A job submitted in the flush is also inserted,
with the same snapshot. Everything runs on the event-loop thread, so the
snapshot is consistent without locks.
"""

from __future__ import annotations

from .._native import AttemptLog
from ..engine import Changed, Engine, Extended, Finished, Job, Leased, Record, Submitted
from ..engine.records import Audited, LimitChanged, RunChanged
from ..states import LEASED, PENDING
from ..store import AuditRow, FlushBatch, HistoryRow, JobRow, LimitRow, RunRow
from .limit_codec import encode_limit
from .meta_codec import encode_meta


class Journal:
    """``hold_ms``: a claim's row is held back this long (claims are write-behind
    anyway), so that an ack arriving meanwhile is written as the same row: one
    history row per attempt instead of two. A crash loses at most the claims of
    the last ``hold_ms``, whose jobs are simply claimable again after restart."""

    def __init__(self, engine: Engine, hold_ms: int = 0) -> None:
        self.engine = engine
        self.hold_ms = hold_ms
        self._new: dict[int, Job] = {}
        # the attempt log of the engine's kernels (the compiled one reads compiled jobs)
        self._log: AttemptLog = engine.kernels.AttemptLog(HistoryRow, LEASED, PENDING)
        self._runs: dict[str, RunRow] = {}
        self._audit: list[AuditRow] = []
        self._limits: dict[tuple[str, str, str], LimitRow] = {}
        self._now = 0

    def __len__(self) -> int:
        """Jobs (and runs, audit entries) waiting to be written: the flush backlog."""
        writes = len(self._runs) + len(self._audit) + len(self._limits)
        return len(self._new) + len(self._log) + writes

    def add(self, records: list[Record]) -> None:
        log = self._log
        for record in records:
            if record.at > self._now:
                self._now = record.at
            if isinstance(record, Leased):
                log.leased(record.at, record.worker, record.jobs, record.tokens, record.deadlines)
            elif isinstance(record, Finished):
                log.finished(*record)
            elif isinstance(record, Submitted):
                for job in record.jobs:
                    self._new[job.jid] = job
            elif isinstance(record, Extended):
                log.extended(record.at, record.jobs, record.tokens, record.deadlines)
            elif isinstance(record, Changed):
                log.changed(record.at, record.jobs, record.state, record.reason)
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
        inserts = [self._snapshot(job) for job in self._new.values()]
        now = self._now if now is None else now
        hold_from = now - self.hold_ms if self.hold_ms and not everything else None
        history = self._log.cut(self._live, self._new, hold_from)
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
        self._runs = {}
        self._audit = []
        self._limits = {}
        return batch

    def due_in_ms(self, now: int) -> int:
        """When the oldest held claim must be written (0: now)."""
        return max(0, self._log.oldest(now) + self.hold_ms - now)

    # -- rows --------------------------------------------------------------------
    def _live(self, jid: int, state: int) -> tuple[int, int, str | None, int]:
        """(due, lease token, lease worker, lease deadline) of a leased or pending job."""
        if state == LEASED:
            leases = self.engine.leases
            worker = self.engine.workers.name(leases.worker_of(jid))
            return 0, leases.token_of(jid), worker, leases.deadline_of(jid)
        return max(self.engine.timers.due_of(jid), 0), 0, None, 0

    def _snapshot(self, job: Job) -> JobRow:
        engine = self.engine
        state = job.state
        if state in (LEASED, PENDING):
            due, token, worker, deadline = self._live(job.jid, state)
        else:
            due, token, worker, deadline = 0, 0, None, 0
        return JobRow(
            job.jid,
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
            due,
            token,
            worker,
            deadline,
            job.last_token,
            job.last_status or None,
            self._now,
        )
