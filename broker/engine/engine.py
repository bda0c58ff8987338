"""The broker's deterministic state machine.

Synchronous, no I/O, time passed in: given the same settings, inputs and
clock it produces the same replies and ledger records. It drives the native
kernels (ready queues, lease table, timer index) in batches, one kernel call
per command where it can, and keeps one ``Job`` per live job.

Every command returns ``(replies, records)``; the records are the only thing
a store ever sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import _native
from .. import states as S
from .._native.job_table_py import JobTable
from ..errors import IllegalTransition, NotFound, ValidationFailed
from .commands import (
    ACCEPTED,
    ACK_STATUSES,
    CONFLICT,
    EMPTY_GRANT,
    MAX_ATTEMPTS_LIMIT,
    NOT_FOUND,
    PRIORITY_MAX,
    PRIORITY_MIN,
    AckItem,
    AckReply,
    Grant,
    HeartbeatReply,
    JobSpec,
    RunReply,
    SubmitReply,
)
from .idempotency import IdempotencyKeys
from .interner import Interner
from .job import Job, JobMeta
from .limits import BucketState, FlowControl, Quota, Source
from .recent import RecentJobs
from .records import (
    Audited,
    Changed,
    Extended,
    Finished,
    Leased,
    LimitChanged,
    Record,
    Submitted,
)
from .retry import RetryPolicy
from .runs import Member, Run, Runs, member
from .settings import EngineSettings

_LEASED_MASK = 1 << S.LEASED
_ACCEPTED_SUCCEEDED = AckReply(ACCEPTED, S.SUCCEEDED)  # shared: replies are immutable


class Engine:
    """The state machine. ``kernels`` picks the kernel implementations (a module
    exporting the kernel classes: ``broker._native`` by default, or a twin set
    for comparisons); ``first_jid`` and ``first_token`` seed the id counters
    above everything a store has already seen."""

    def __init__(
        self,
        settings: EngineSettings | None = None,
        *,
        first_jid: int = 1,
        first_token: int = 1,
        kernels: Any = _native,
    ) -> None:
        self.settings = settings or EngineSettings()
        cfg = self.settings
        #: the kernel implementations in use (the service's journal takes its attempt log here)
        self.kernels = kernels
        self.tenants = Interner()
        self.job_types = Interner()
        self.workers = Interner()
        #: live jobs by id; ``make_job`` builds their records
        self.jobs: JobTable = kernels.JobTable()
        self.make_job: type[Job] = kernels.Job
        self.ready = kernels.ReadyQueues()
        self.leases = kernels.LeaseTable(first_token)
        self.timers = kernels.TimerIndex()
        self.retry = RetryPolicy(
            cfg.retry_base_ms, cfg.retry_cap_ms, cfg.retry_after_cap_ms, cfg.seed
        )
        self.next_jid = first_jid
        #: live jobs per state; terminal states count every job that ever got there
        self.state_counts = [0] * len(S.NAMES)
        # finished jobs stay reachable for a while so a repeated ack gets the same answer
        self._recent = RecentJobs(self.settings.recent_finished)
        self._keys = IdempotencyKeys(self.settings.idempotency_retention_ms)
        self.runs = Runs(self, kernels)
        self.limits = FlowControl(kernels)
        #: set when limits put jobs back in reach (the service wakes long polls)
        self.lifted = False
        self.live_per_tenant: dict[int, int] = {}

    # -- queries ------------------------------------------------------------
    def finished_state(self, jid: int) -> int:
        """Final state of a recently finished job, -1 when not remembered."""
        done = self._recent.get(jid)
        return -1 if done is None else done.state

    def next_wakeup(self) -> int:
        """Earliest lease deadline, timer due time or limit lifting (ms), -1 when none."""
        times = (self.leases.next_deadline(), self.timers.next_due(), self.limits.next_wakeup())
        return min((t for t in times if t >= 0), default=-1)

    # -- recovery ---------------------------------------------------------------
    def restore(
        self,
        rows: Iterable[Any],
        keyed: Iterable[Any],
        decode_meta: Callable[[bytes | None], JobMeta | None],
        runs: Iterable[Any] = (),
        members: Iterable[Any] = (),
    ) -> None:
        """Rebuild the hot structures from a store, before serving anything.

        ``rows`` are live jobs in submission (jid) order and ``keyed`` are
        recently finished jobs whose idempotency keys must keep deduping; both
        carry the fields of ``broker.store.JobRow``. ``runs`` (``RunRow``s) are
        the runs of live jobs and recent runs with a token; ``members`` the
        finished jobs of those runs that still have live ones.
        """
        ready: list[Job] = []
        timed: list[tuple[Job, int]] = []
        counts = self.state_counts
        for row in rows:
            job = self._job_from_row(row, decode_meta(row.meta))
            self.jobs[job.jid] = job
            if job.state == S.LEASED:
                self.leases.restore(
                    job.jid, row.lease_token, self.workers.id(row.lease_worker), row.lease_deadline
                )
            elif job.state == S.READY:
                ready.append(job)
            elif job.state == S.PENDING:
                timed.append((job, max(row.due, row.not_before)))
            if job.meta is not None and job.meta.idempotency_key is not None:
                self._keys.claim(job.tenant, job.meta.idempotency_key, job.jid)
            counts[job.state] += 1
            self._count_live(job.tenant, 1)
        self._restore_runs(runs, members, decode_meta)
        if self.limits.active:  # slots in use are counted again
            self.limits.adopt(j for j in self.jobs.values() if j.state == S.LEASED)
        for job, due in timed:
            if not self.runs.waiting(job.jid):  # a job waiting on parents has no timer
                self.timers.add(job.jid, due)
        if ready:
            self.enqueue(ready)
        for row in keyed:
            meta = decode_meta(row.meta)
            if meta is None or meta.idempotency_key is None:
                continue
            tid = self.tenants.id(row.tenant)
            self._keys.finished(
                tid, meta.idempotency_key, row.jid, row.state, row.created, row.updated
            )
            self.next_jid = max(self.next_jid, row.jid + 1)

    def _restore_runs(
        self,
        runs: Iterable[Any],
        members: Iterable[Any],
        decode_meta: Callable[[bytes | None], JobMeta | None],
    ) -> None:
        by_run: dict[str, list[Member]] = {}
        found = [(job.jid, job.state, job.meta) for job in self.jobs.values()]
        found += [(row.jid, row.state, decode_meta(row.meta)) for row in members]
        for jid, state, meta in found:
            if meta is not None and meta.run_id is not None:
                by_run.setdefault(meta.run_id, []).append(member(jid, state, meta))
        for row in runs:
            tid = self.tenants.id(row.tenant)
            if row.token is not None:
                self.runs.tokens[(tid, row.token)] = row.run_id
            if row.run_id in by_run:
                run = Run(row.run_id, tid, row.token, row.created, row.status)
                self.runs.load(run, by_run[row.run_id])

    def load_run(self, row: Any, members: Iterable[Any], decode_meta: Any) -> None:
        """Bring a finished run (``RunRow`` and its job rows) back from the ledger,
        so that jobs can join it or its failed jobs be replayed."""
        if row.run_id in self.runs.live:
            return
        run = Run(row.run_id, self.tenants.id(row.tenant), row.token, row.created, row.status)
        self.runs.load(run, [member(m.jid, m.state, decode_meta(m.meta)) for m in members])
        self.runs.live[run.run_id] = run  # held until the caller's command settles it

    def knows_run(self, run_id: str) -> bool:
        return run_id in self.runs.live

    # -- commands -------------------------------------------------------------
    def submit(
        self, now: int, tenant: str, specs: Sequence[JobSpec]
    ) -> tuple[list[SubmitReply], list[Record]]:
        """Create jobs (all or nothing); a known idempotency key returns its job instead.

        Jobs with a ``runId`` join that run, or start it (all jobs of the batch
        must name the same one), and are wired to its jobs by ``dependsOn``."""
        self._check_specs(specs)
        tid = self.tenants.id(tenant)
        run_id = _run_of(specs)
        if run_id is not None:
            run = self.runs.find(tid, run_id)
            if run is None:
                if run_id in self.runs.live:  # another tenant's: as if it did not exist
                    raise NotFound(f"run {run_id} not found")
                # a run id the caller chose (the service brought back any run the
                # ledger knows): the run starts with this batch
                run = self.runs.new_run(now, tid, run_id, None)
            return self._submit_wired(now, tid, run, specs, require_keys=False)
        self._keys.expire(now)
        new_job = self.new_job
        replies: list[SubmitReply] = []
        created: list[Job] = []
        ready: list[Job] = []
        for spec in specs:
            key = spec.meta.idempotency_key if spec.meta is not None else None
            if key is not None:
                known = self._keys.job_for(tid, key)
                if known is not None:
                    state, born = self._current_state(known)
                    replies.append(SubmitReply(known, state, True, born))
                    continue
            jid = self.next_jid
            self.next_jid = jid + 1
            waits = spec.not_before > now
            job = new_job(jid, tid, spec, now, spec.meta, S.PENDING if waits else S.READY)
            self.jobs[jid] = job
            if key is not None:
                self._keys.claim(tid, key, jid)
            if waits:
                self.timers.add(jid, spec.not_before)
            else:
                ready.append(job)
            self.state_counts[job.state] += 1
            created.append(job)
            replies.append(SubmitReply(jid, job.state, False, now))
        self._count_live(tid, len(created))
        if ready:
            self.enqueue(ready)
        return replies, ([Submitted(now, created)] if created else [])

    def create_run(
        self, now: int, tenant: str, run_id: str, token: str | None, specs: Sequence[JobSpec]
    ) -> tuple[RunReply, list[Record]]:
        """Create a run with its jobs and edges at once, or find it again by ``token``."""
        if not specs:
            raise ValidationFailed("a run needs at least one job")
        self._check_specs(specs)
        tid = self.tenants.id(tenant)
        if token is not None:
            known = self.runs.tokens.get((tid, token))
            if known is not None:
                return RunReply(known, True, []), []
        for index, spec in enumerate(specs):
            if spec.meta is not None and spec.meta.run_id not in (None, run_id):
                raise ValidationFailed(
                    "jobs of a new run cannot name another run",
                    details=[{"field": f"jobs[{index}].runId", "problem": "must be omitted"}],
                )
        run = self.runs.new_run(now, tid, run_id, token)
        try:
            replies, records = self._submit_wired(now, tid, run, specs, require_keys=True)
        except BaseException:
            if token is not None:
                self.runs.tokens.pop((tid, token), None)
            raise
        return RunReply(run_id, False, replies), records

    def _submit_wired(
        self, now: int, tid: int, run: Run, specs: Sequence[JobSpec], require_keys: bool
    ) -> tuple[list[SubmitReply], list[Record]]:
        """Jobs of a run; one whose idempotency key is known is answered with the
        job it names (which then does not join, and cannot be depended on)."""
        self._keys.expire(now)
        replies: list[SubmitReply | None] = [None] * len(specs)
        fresh: list[int] = []
        firsts: dict[str, int] = {}  # idempotency key -> index of its first fresh job
        repeats: dict[int, int] = {}  # index of a repeat -> index of that first job
        for index, spec in enumerate(specs):
            key = spec.meta.idempotency_key if spec.meta is not None else None
            known = self._keys.job_for(tid, key) if key is not None else None
            if known is not None:
                state, born = self._current_state(known)
                replies[index] = SubmitReply(known, state, True, born)
            elif key is not None and key in firsts:
                repeats[index] = firsts[key]
            else:
                if key is not None:
                    firsts[key] = index
                fresh.append(index)
        jobs, run_records = self.runs.submit(
            now, tid, run, [specs[i] for i in fresh], require_keys, fresh
        )
        counts = self.state_counts
        ready: list[Job] = []
        for index, job in zip(fresh, jobs, strict=True):
            self.jobs[job.jid] = job
            counts[job.state] += 1
            if job.state == S.READY:
                ready.append(job)
            elif job.state == S.PENDING and not self.runs.waiting(job.jid):
                self.timers.add(job.jid, job.not_before)
            if job.meta is not None and job.meta.idempotency_key is not None:
                self._keys.claim(tid, job.meta.idempotency_key, job.jid)
            replies[index] = SubmitReply(job.jid, job.state, False, now)
        self._count_live(tid, len(jobs))
        for index, first in repeats.items():
            replies[index] = replies[first]._replace(deduplicated=True)  # type: ignore[union-attr]
        if ready:
            self.enqueue(ready)
        records: list[Record] = [*run_records, Submitted(now, jobs)] if jobs else []
        return replies, records  # type: ignore[return-value]

    def new_job(
        self, jid: int, tid: int, spec: JobSpec, now: int, meta: JobMeta | None, state: int = 0
    ) -> Job:
        """A fresh job (pending unless ``state`` says otherwise)."""
        cfg = self.settings
        return self.make_job(
            jid,
            tid,
            self.job_types.id(spec.job_type),
            spec.priority,
            spec.max_attempts or cfg.default_max_attempts,
            spec.lease_ms or cfg.default_lease_ms,
            now,
            spec.not_before,
            spec.payload,
            meta,
            state,
        )

    def cancel_run(self, now: int, tenant: str, run_id: str) -> tuple[int, list[Record]]:
        """Cancel every live job of a run (leased ones too: their acks then conflict)."""
        run = self.runs.find(self.tenants.find(tenant), run_id)
        if run is None:
            return 0, []
        jobs, records = self.runs.cancel(now, run)
        return len(jobs), records

    def replay_targets(self, tenant: str, run_id: str, jids: Sequence[int]) -> list[int]:
        """The finished jobs a replay of ``jids`` in the run brings back (their
        rows must be read from the ledger and passed to ``replay_run``)."""
        run = self.runs.find(self.tenants.find(tenant), run_id)
        if run is None:
            raise NotFound(f"run {run_id} has no job that can be replayed")
        return self.runs.replay_targets(run, jids)

    def replay_run(
        self,
        now: int,
        tenant: str,
        run_id: str,
        jids: Sequence[int],
        rows: Sequence[Any],
        decode_meta: Callable[[bytes | None], JobMeta | None],
        actor: str,
        reason: str,
    ) -> tuple[list[Job], list[Record]]:
        """Partial replay: re-run the named failed or blocked jobs and everything
        downstream of them; succeeded jobs are kept."""
        targets = self.replay_targets(tenant, run_id, jids)
        by_jid = {row.jid: row for row in rows}
        if sorted(by_jid) != targets:
            raise IllegalTransition(-1, "changed", "replayed")  # raced with another command
        run = self.runs.live[run_id]
        revive = [self._job_from_row(by_jid[jid], decode_meta(by_jid[jid].meta)) for jid in targets]
        jobs, records = self.runs.replay(now, run, revive)
        target = f"{run_id}:" + ",".join(map(str, jids))
        records.append(Audited(now, tenant, actor, "run.replay", target, reason, None))
        return jobs, records

    def claim(
        self,
        now: int,
        tenant: str | None,
        worker: str,
        job_types: Sequence[str],
        max_jobs: int,
        lease_ms: int | None = None,
    ) -> tuple[Grant, list[Record]]:
        """Lease up to ``max_jobs`` ready jobs of ``job_types`` (all tenants when None)."""
        if max_jobs < 0:
            raise ValidationFailed("maxJobs must be >= 0")
        if lease_ms is not None and not 1 <= lease_ms <= self.settings.max_lease_ms:
            raise ValidationFailed("lease out of range")
        tid = -1 if tenant is None else self.tenants.find(tenant)
        types = [t for t in map(self.job_types.find, job_types) if t >= 0]
        if (tenant is not None and tid < 0) or not types:
            return EMPTY_GRANT, []
        jids = self.ready.pop_many(max_jobs, types, tid)
        if not jids:
            return EMPTY_GRANT, []
        jobs = self.jobs
        granted: list[Job] = jobs.get_many(jids)
        if self.limits.active:
            granted = self._admit(now, granted)
            if not granted:
                return EMPTY_GRANT, []
            jids = [job.jid for job in granted]
        wid = self.workers.id(worker)
        if lease_ms is not None:
            deadline = now + lease_ms
            tokens = self.leases.grant_many(jids, wid, deadline)
            deadlines = [deadline] * len(jids)
        else:
            tokens, deadlines = self._grant_job_leases(now, granted, jids, wid)
        self.make_job.lease_many(granted, S.LEASED)
        counts = self.state_counts
        counts[S.READY] -= len(jids)
        counts[S.LEASED] += len(jids)
        grant = Grant(granted, tokens, deadlines)
        return grant, [Leased(now, worker, granted, tokens, deadlines)]

    def _admit(self, now: int, popped: list[Job]) -> list[Job]:
        """The popped jobs the limits let through; the rest go back or are parked."""
        limits = self.limits
        granted = limits.admit(now, popped, lambda back: self.enqueue(back, front=True))
        for tid, jtype in limits.to_hold:
            self.ready.set_held(tid, jtype, True)
        limits.to_hold.clear()
        return granted

    def heartbeat(
        self,
        now: int,
        tenant: str,
        jids: Sequence[int],
        tokens: Sequence[int],
        extend_ms: Sequence[int],
        progress: Sequence[bytes | None] | None = None,
    ) -> tuple[list[HeartbeatReply], list[Record]]:
        """Extend leases; a stale token or another tenant's job is reported lost."""
        if not len(jids) == len(tokens) == len(extend_ms):
            raise ValidationFailed("heartbeat columns differ in length")
        max_lease = self.settings.max_lease_ms
        if any(not 1 <= ms <= max_lease for ms in extend_ms):
            raise ValidationFailed("extendSeconds out of range")
        tid = self.tenants.find(tenant)
        jobs = self.jobs
        deadlines = [now + ms for ms in extend_ms]
        # one kernel call per distinct deadline (usually one for the whole batch)
        found = jobs.get_many(jids)
        groups: dict[int, list[int]] = {}
        for i, job in enumerate(found):
            if job is not None and job.tenant == tid:
                groups.setdefault(deadlines[i], []).append(i)
        ok = [False] * len(jids)
        for deadline, indexes in groups.items():
            extended = self.leases.extend_many(
                [jids[i] for i in indexes], [tokens[i] for i in indexes], deadline
            )
            for i, good in zip(indexes, extended, strict=True):
                ok[i] = good
        replies = [
            HeartbeatReply(jid, deadline if good else -1)
            for jid, deadline, good in zip(jids, deadlines, ok, strict=True)
        ]
        kept = [i for i, good in enumerate(ok) if good]
        if not kept:
            return replies, []
        record = Extended(
            now,
            [found[i] for i in kept],
            [tokens[i] for i in kept],
            [deadlines[i] for i in kept],
            [progress[i] if progress is not None else None for i in kept],
        )
        return replies, [record]

    def complete(
        self,
        now: int,
        tenant: str,
        jids: Sequence[int],
        tokens: Sequence[int],
        outputs: Sequence[bytes | None] | None = None,
    ) -> tuple[list[AckReply], list[Record]]:
        """Successes only, as columns: the hot path of ``ack``, with the same answers."""
        if len(jids) != len(tokens) or (outputs is not None and len(outputs) != len(jids)):
            raise ValidationFailed("complete columns differ in length")
        tid = self.tenants.find(tenant)
        jobs = self.jobs
        found = jobs.get_many(jids)
        if not self.make_job.all_in(found, tid, S.LEASED):
            # someone else's job, a repeat or a stale lease: the general path sorts it out
            items = [
                AckItem(jid, token, "succeeded", output=None if outputs is None else out)
                for jid, token, out in zip(jids, tokens, outputs or [None] * len(jids), strict=True)
            ]
            return self._ack_items(now, tenant, items)
        released = self.leases.release_many(jids, tokens)
        if not all(released):
            return self._complete_some(now, tid, jids, tokens, outputs, released)
        # the hot path: every lease was live; no per-job Python below
        n = len(jids)
        done: list[Job] = found  # all found, checked above
        jobs.pop_many(jids)
        tokens = list(tokens)  # the kernel's and the record's column
        described = self.make_job.finish_many(done, tokens, S.SUCCEEDED, "succeeded")
        self._recent.add_many(jids, done)
        for job in described:
            self._after_finish(now, job, S.LEASED)
        if self.limits.holding:
            self.limits.succeeded(now, done)
        self.state_counts[S.LEASED] -= n
        self.state_counts[S.SUCCEEDED] += n
        self._count_live(tid, -n)
        replies = [_ACCEPTED_SUCCEEDED] * n
        fin = Finished(
            now,
            done,
            tokens,
            ["succeeded"] * n,
            [S.SUCCEEDED] * n,
            [0] * n,
            [None] * n,
            list(outputs) if outputs is not None else [None] * n,
        )
        return replies, ([fin, *self.runs.settle(now)] if described else [fin])

    def _complete_some(
        self,
        now: int,
        tid: int,
        jids: Sequence[int],
        tokens: Sequence[int],
        outputs: Sequence[bytes | None] | None,
        released: list[bool],
    ) -> tuple[list[AckReply], list[Record]]:
        """``complete`` when some leases were not live (repeats inside the batch, stale)."""
        jobs = self.jobs
        replies: list[AckReply] = []
        done: list[Job] = []
        done_tokens: list[int] = []
        done_outputs: list[bytes | None] = []
        for index, ok in enumerate(released):
            jid = jids[index]
            token = tokens[index]
            if not ok:
                replies.append(self._repeat_ack(tid, AckItem(jid, token, "succeeded")))
                continue
            job = jobs.pop(jid)
            job.state = S.SUCCEEDED
            job.last_token = token
            job.last_status = "succeeded"
            self._recent.add(job)
            self._after_finish(now, job, S.LEASED)
            if self.limits.holding:
                self.limits.finished(now, job, "succeeded")
            done.append(job)
            done_tokens.append(token)
            done_outputs.append(outputs[index] if outputs is not None else None)
            replies.append(_ACCEPTED_SUCCEEDED)
        n = len(done)
        if not n:
            return replies, []
        self.state_counts[S.LEASED] -= n
        self.state_counts[S.SUCCEEDED] += n
        self._count_live(tid, -n)
        fin = Finished(
            now, done, done_tokens, ["succeeded"] * n, [S.SUCCEEDED] * n, [0] * n, [None] * n,
            done_outputs,
        )  # fmt: skip
        return replies, [fin, *self.runs.settle(now)]

    def ack(
        self, now: int, tenant: str, items: Sequence[AckItem]
    ) -> tuple[list[AckReply], list[Record]]:
        """Apply workers' reports; a stale lease is a conflict and changes nothing.

        A batch of successes takes the columnar ``complete`` path."""
        if items and all(item.status == "succeeded" for item in items):
            return self.complete(
                now,
                tenant,
                [item.jid for item in items],
                [item.token for item in items],
                [item.output for item in items],
            )
        return self._ack_items(now, tenant, items)

    def _ack_items(
        self, now: int, tenant: str, items: Sequence[AckItem]
    ) -> tuple[list[AckReply], list[Record]]:
        """The general ack: any mix of statuses, item by item after one release call."""
        for item in items:
            if type(item.status) is not str or item.status not in ACK_STATUSES:
                raise ValidationFailed(f"unknown status {item.status!r}")
        tid = self.tenants.find(tenant)
        jobs = self.jobs
        # Release every lease the batch holds in one kernel call; only the
        # caller's own leased jobs are offered, so nothing else can change.
        own = [
            index
            for index, item in enumerate(items)
            if (job := jobs.get(item.jid)) is not None
            and job.tenant == tid
            and _LEASED_MASK >> job.state & 1
        ]
        released = self.leases.release_many(
            [items[i].jid for i in own], [items[i].token for i in own]
        )
        live = {index for index, ok in zip(own, released, strict=True) if ok}
        replies: list[AckReply] = []
        fin = Finished(now, [], [], [], [], [], [], [])
        for index, item in enumerate(items):
            if index in live:
                state = self._finish(now, jobs[item.jid], item, fin)
                replies.append(AckReply(ACCEPTED, state))
            else:
                replies.append(self._repeat_ack(tid, item))
        return replies, ([fin, *self.runs.settle(now)] if fin.jobs else [])

    def cancel(self, now: int, tenant: str, jid: int) -> tuple[int, list[Record]]:
        """Operator cancel of one job, leased or not; its worker's ack then conflicts."""
        tid = self.tenants.find(tenant)
        job = self.jobs.get(jid)
        if job is None or job.tenant != tid:
            done = self._recent.get(jid)
            if done is not None and done.tenant == tid:
                raise IllegalTransition(jid, S.NAMES[done.state], "canceled")
            raise NotFound(f"job {jid} not found")
        self._check_move(job, S.CANCELED)
        self.withdraw(job, now)
        self.retire(now, job, S.CANCELED, job.last_token, "canceled")
        return S.CANCELED, [Changed(now, [job], S.CANCELED, "canceled"), *self.runs.settle(now)]

    def withdraw(self, job: Job, now: int) -> None:
        """Take a live job out of the structure that holds it (before a cancel)."""
        if job.state == S.READY:
            if not self.ready.remove(job.jid):
                self.limits.withdraw(job)  # parked by a limit
        elif job.state == S.PENDING:
            self.timers.remove(job.jid)
        elif job.state == S.LEASED:
            job.last_token = self.leases.revoke(job.jid)
            job.last_status = "canceled"
            self.limits.finished(now, job, "canceled")

    def expire_leases(self, now: int, limit: int = -1) -> list[Record]:
        """Take back leases whose deadline passed: ready again, or dead when spent."""
        flat = self.leases.pop_expired(now, limit)
        if not flat:
            return []
        fin = Finished(now, [], [], [], [], [], [], [])
        back: list[Job] = []
        for i in range(0, len(flat), 2):
            job = self.jobs[flat[i]]
            token = flat[i + 1]
            job.last_token = token
            job.last_status = "expired"
            if self.limits.holding:
                self.limits.finished(now, job, "failed")
            if job.attempt >= job.max_attempts:
                self.retire(now, job, S.DEAD, token, "expired")
            else:
                self.move(job, S.READY)
                back.append(job)
            _append_finished(fin, job, token, "expired", job.state, 0, None, None)
        if back:
            # expired jobs were taken from the head of their queues: put them back there
            self.enqueue(back, front=True)
        return [fin, *self.runs.settle(now)]

    def release_due(self, now: int, limit: int = -1) -> list[Record]:
        """Make jobs whose not-before or retry backoff has passed claimable (and
        put back in reach what limits held, once they allow it again)."""
        self._lift_limits(now)
        due = self.timers.pop_due(now, limit)
        if not due:
            return []
        jobs = [self.jobs[jid] for jid in due]
        for job in jobs:
            self.move(job, S.READY)
        self.enqueue(jobs)
        return [Changed(now, jobs, S.READY, "due")]

    def _lift_limits(self, now: int) -> None:
        queues, parked = self.limits.due(now)
        for tid, jtype in queues:
            self.ready.set_held(tid, jtype, False)
        if parked:
            self.enqueue(list(parked), front=True)
        if queues or parked:
            self.lifted = True

    # -- limits (operator configuration) ------------------------------------------------
    def set_limit(self, now: int, tenant: str, kind: str, name: str, config: object) -> Record:
        """Set (None: remove) a limit; it takes effect at once. ``kind``: "quota"
        (``name`` a job type, ``config`` a ``Quota``), "source" (a host, a
        ``Source``) or "weight" (``name`` empty, the tenant's fairness weight)."""
        tid = self.tenants.id(tenant)
        if kind == "quota":
            assert config is None or isinstance(config, Quota)
            self.limits.set_quota(tid, self.job_types.id(name), config, now)
        elif kind == "source":
            assert config is None or isinstance(config, Source)
            self.limits.set_source(tid, name, config, now)
        elif kind == "weight":
            self.ready.set_weight(tid, 1 if config is None else int(config))  # type: ignore[call-overload]
        else:
            raise ValueError(f"unknown limit kind {kind!r}")
        if kind != "weight" and len(self.leases):  # jobs leased before it count against it
            leased = (j for j in self.jobs.values() if j.state == S.LEASED and j.tenant == tid)
            self.limits.adopt(leased)
        self._lift_limits(now)
        return LimitChanged(now, kind, tenant, name, config)

    def limits_of(self, tenant: str, kind: str) -> list[tuple[str, object]]:
        """A tenant's quotas (by job type) or sources (by host), sorted by name."""
        tid = self.tenants.find(tenant)
        found: list[tuple[str, object]] = []
        if kind == "quota":
            names = self.job_types.name
            found = [(names(jt), q) for (t, jt), q in self.limits.quotas.items() if t == tid]
        elif kind == "source":
            hosts = self.limits.source_ids.name
            found = [(hosts(sid), s) for (t, sid), s in self.limits.sources.items() if t == tid]
        return sorted(found, key=lambda item: item[0])

    def retry_job(self, now: int, tenant: str, row: Any, meta: JobMeta | None) -> list[Record]:
        """An operator's retry of a dead or canceled job (not in a run): back to
        ready in place, with a new series of attempts. ``row`` is its store row."""
        if row.tenant != tenant:
            raise NotFound(f"job {row.jid} not found")
        live = self.jobs.get(row.jid)
        if live is not None:
            raise IllegalTransition(row.jid, S.NAMES[live.state], "ready")
        job = self._job_from_row(row, meta)
        if job.state not in (S.DEAD, S.CANCELED):
            raise IllegalTransition(job.jid, S.NAMES[job.state], "ready")
        job.attempt = 0
        self.jobs[job.jid] = job
        self.move(job, S.READY, revive=True)
        self.enqueue([job])
        return [Changed(now, [job], S.READY, "retried")]

    def take_incidents(self) -> list[Record]:
        """Since the last call: circuit breakers that opened, as audit records, and
        slowed source buckets whose kept state changed, as ``bucket`` limit records."""
        records: list[Record] = []
        limits = self.limits
        for at, bkey in limits.incidents:
            tid, jtype, sid = limits.breaker_parts(bkey)
            target = f"{self.job_types.name(jtype)}@{limits.source_ids.name(sid)}"
            reason = "failure rate over the threshold"
            tenant = self.tenants.name(tid)
            records.append(Audited(at, tenant, "broker", "breaker.opened", target, reason, None))
        limits.incidents.clear()
        seen: set[int] = set()
        for at, skey in reversed(limits.bucket_changes):  # the newest state of each once
            if skey not in seen:
                seen.add(skey)
                tid, host = limits.source_parts(skey)
                state = limits.bucket_state(skey, at)
                records.append(LimitChanged(at, "bucket", self.tenants.name(tid), host, state))
        limits.bucket_changes.clear()
        return records

    def restore_limits(self, now: int, limits: Iterable[tuple[str, str, str, object]]) -> None:
        """Put the limits a store kept back in force (before jobs are restored); a
        slowed bucket's kept state goes back after the sources it belongs to."""
        kept = []
        for kind, tenant, name, config in limits:
            if kind == "bucket":
                kept.append((tenant, name, config))
            else:
                self.set_limit(now, tenant, kind, name, config)
        for tenant, host, state in kept:
            assert isinstance(state, BucketState)
            self.limits.restore_bucket(self.tenants.id(tenant), host, state)
        self.limits.bucket_changes.clear()  # restoring changes nothing worth writing

    # -- internals ------------------------------------------------------------
    def enqueue(self, jobs: list[Job], front: bool = False) -> None:
        """Make jobs claimable: to the back of their lanes, or back to the head."""
        push = self.ready.push_front_many if front else self.ready.push_many
        push(
            [job.jid for job in jobs],
            [job.tenant for job in jobs],
            [job.jtype for job in jobs],
            [job.priority for job in jobs],
        )

    def _check_specs(self, specs: Sequence[JobSpec]) -> None:
        problems = []
        max_lease = self.settings.max_lease_ms
        for index, spec in enumerate(specs):
            if not PRIORITY_MIN <= spec.priority <= PRIORITY_MAX:
                problems.append({"field": f"jobs[{index}].priority", "problem": "must be 0..9"})
            if spec.max_attempts is not None and not 1 <= spec.max_attempts <= MAX_ATTEMPTS_LIMIT:
                problems.append(
                    {"field": f"jobs[{index}].maxAttempts", "problem": "must be 1..100"}
                )
            if spec.lease_ms is not None and not 1 <= spec.lease_ms <= max_lease:
                problems.append({"field": f"jobs[{index}].leaseSeconds", "problem": "out of range"})
            if spec.not_before < 0:
                problems.append({"field": f"jobs[{index}].notBefore", "problem": "before 1970"})
        if problems:
            raise ValidationFailed("invalid job submission", details=problems)

    def _grant_job_leases(
        self, now: int, jobs: list[Job], jids: list[int], wid: int
    ) -> tuple[list[int], list[int]]:
        """Lease each job for its own default duration (a claim without leaseSeconds)."""
        lease_ms = jobs[0].lease_ms
        if all(job.lease_ms == lease_ms for job in jobs):  # mostly: one default for all
            deadline = now + lease_ms
            return self.leases.grant_many(jids, wid, deadline), [deadline] * len(jobs)
        tokens = [0] * len(jobs)
        deadlines = [0] * len(jobs)
        groups: dict[int, list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.lease_ms, []).append(index)
        for lease_ms, indexes in groups.items():
            deadline = now + lease_ms
            granted = self.leases.grant_many([jobs[i].jid for i in indexes], wid, deadline)
            for index, token in zip(indexes, granted, strict=True):
                tokens[index] = token
                deadlines[index] = deadline
        return tokens, deadlines

    def _finish(self, now: int, job: Job, item: AckItem, fin: Finished) -> int:
        """Apply a worker's report to a job whose lease it just gave back."""
        status = item.status
        job.last_token = item.token
        job.last_status = status
        if self.limits.holding:
            self.limits.finished(now, job, _limit_outcome(item), item.retry_after_ms)
        due = 0
        if status == "succeeded":
            self.retire(now, job, S.SUCCEEDED, item.token, status)
        elif status == "canceled":
            self.retire(now, job, S.CANCELED, item.token, status)
        elif item.retryable and job.attempt < job.max_attempts:
            due = now + self.retry.delay(job.attempt, item.retry_after_ms)
            self.move(job, S.PENDING)
            self.timers.add(job.jid, due)
        else:
            self.retire(now, job, S.DEAD, item.token, status)
        _append_finished(fin, job, item.token, status, job.state, due, item.error, item.output)
        return job.state

    def _repeat_ack(self, tid: int, item: AckItem) -> AckReply:
        """Answer an ack whose lease is no longer held: a repeat, or a conflict."""
        job = self.jobs.get(item.jid)
        if job is not None and job.tenant == tid:
            if job.last_token == item.token and job.last_status == item.status:
                return AckReply(ACCEPTED, job.state)
            return AckReply(CONFLICT, -1)
        done = self._recent.get(item.jid)
        if done is None or done.tenant != tid:
            return AckReply(NOT_FOUND, -1)
        if done.last_token == item.token and done.last_status == item.status:
            return AckReply(ACCEPTED, done.state)
        return AckReply(CONFLICT, -1)

    def _check_move(self, job: Job, dst: int) -> None:
        if not S.ALLOWED[job.state] >> dst & 1:
            raise IllegalTransition(job.jid, S.NAMES[job.state], S.NAMES[dst])

    def move(self, job: Job, dst: int, revive: bool = False) -> None:
        """Change a live job's state; ``revive``: it comes back from a terminal
        state, whose count (every job that ever got there) stays."""
        self._check_move(job, dst)
        if revive:
            self._count_live(job.tenant, 1)
        else:
            self.state_counts[job.state] -= 1
        self.state_counts[dst] += 1
        job.state = dst

    def retire(
        self, now: int, job: Job, dst: int, token: int, status: str, propagate: bool = True
    ) -> None:
        """Move a job to a terminal state and out of the live table; ``propagate``:
        its run (if any) learns of it at the command's ``runs.settle``."""
        was = job.state
        self.move(job, dst)
        job.last_token = token
        job.last_status = status
        del self.jobs[job.jid]
        self._count_live(job.tenant, -1)
        self._recent.add(job)
        self._after_finish(now, job, was if propagate else -1)

    def _count_live(self, tid: int, n: int) -> None:
        self.live_per_tenant[tid] = self.live_per_tenant.get(tid, 0) + n

    def live_jobs(self, tenant: str | None = None) -> int:
        """Jobs not finished yet (pending, ready, leased, blocked), of one tenant or all."""
        if tenant is None:
            return len(self.jobs)
        return self.live_per_tenant.get(self.tenants.find(tenant), 0)

    def _after_finish(self, now: int, job: Job, was: int) -> None:
        """Remember a finished job's idempotency key; tell its run (``was`` >= 0)."""
        meta = job.meta
        if meta is None:
            return
        if meta.idempotency_key is not None:
            self._remember_key(now, job)
        if meta.run_id is not None and was >= 0:
            self.runs.retired(job, was)

    def _job_from_row(self, row: Any, meta: JobMeta | None) -> Job:
        """A job as a store row describes it (recovery, replay)."""
        job = self.make_job(
            row.jid,
            self.tenants.id(row.tenant),
            self.job_types.id(row.job_type),
            row.priority,
            row.max_attempts,
            row.lease_ms,
            row.created,
            row.not_before,
            row.payload,
            meta,
            row.state,
        )
        job.attempt = row.attempt
        job.last_token = row.last_token
        job.last_status = row.last_status or ""
        self.next_jid = max(self.next_jid, job.jid + 1)
        return job

    def _remember_key(self, now: int, job: Job) -> None:
        """A finished job's idempotency key keeps deduping for the retention time."""
        assert job.meta is not None and job.meta.idempotency_key is not None
        self._keys.finished(
            job.tenant, job.meta.idempotency_key, job.jid, job.state, job.created, now
        )

    def _current_state(self, jid: int) -> tuple[int, int]:
        """(state, created) of a job an idempotency key points at."""
        job = self.jobs.get(jid)
        return (job.state, job.created) if job is not None else self._keys.final(jid)

    def consistency_errors(self) -> list[str]:
        """Cross-check the job table against the kernels (a debugging and test aid; O(n))."""
        errors = []
        counts = [0] * len(S.NAMES)
        for jid, job in self.jobs.items():
            counts[job.state] += 1
            where = {
                "ready": jid in self.ready or jid in self.limits.parked_jids,
                "leased": jid in self.leases,
                "timer": jid in self.timers,
            }
            expected = {
                "ready": job.state == S.READY,
                "leased": job.state == S.LEASED,
                "timer": job.state == S.PENDING and not self.runs.waiting(jid),
            }
            if where != expected:
                errors.append(f"job {jid} in state {S.NAMES[job.state]} but {where}")
            if job.state in S.TERMINAL:
                errors.append(f"terminal job {jid} is still live")
            if job.attempt > job.max_attempts:
                errors.append(f"job {jid} has attempt {job.attempt} > {job.max_attempts}")
        for state in (S.PENDING, S.READY, S.LEASED, S.BLOCKED):
            if counts[state] != self.state_counts[state]:
                errors.append(
                    f"{S.NAMES[state]} count {self.state_counts[state]} != {counts[state]}"
                )
        parked = len(self.limits.parked_jids)
        if len(self.ready) + parked != counts[S.READY] or len(self.leases) != counts[S.LEASED]:
            errors.append("kernel sizes differ from the job table")
        if sum(self.live_per_tenant.values()) != len(self.jobs):
            errors.append("live jobs per tenant do not add up to the job table")
        return errors


def _limit_outcome(item: AckItem) -> str:
    """What a worker's report means for its source's bucket and breaker."""
    if item.status == "succeeded":
        return "succeeded"
    if item.status == "canceled":
        return "canceled"
    return "throttled" if item.throttled or item.retry_after_ms else "failed"


def _run_of(specs: Sequence[JobSpec]) -> str | None:
    """The run a batch joins: None, or the one ``runId`` all its jobs name."""
    named = {spec.meta.run_id if spec.meta is not None else None for spec in specs}
    for index, spec in enumerate(specs):
        if spec.depends_on and (spec.meta is None or spec.meta.run_id is None):
            raise ValidationFailed(
                "dependsOn needs a runId",
                details=[{"field": f"jobs[{index}].runId", "problem": "required with dependsOn"}],
            )
    if named == {None}:
        return None
    if len(named) > 1:
        raise ValidationFailed("all jobs of a submission that joins a run must name the same run")
    return named.pop()


def _append_finished(
    fin: Finished,
    job: Job,
    token: int,
    status: str,
    state: int,
    due: int,
    error: bytes | None,
    output: bytes | None,
) -> None:
    fin.jobs.append(job)
    fin.tokens.append(token)
    fin.statuses.append(status)
    fin.states.append(state)
    fin.due.append(due)
    fin.errors.append(error)
    fin.outputs.append(output)
