"""DAG runs: membership, dependency wiring, readiness and failure propagation.

A run stays in memory while any of its jobs is live (pending, ready, leased or
blocked). The DAG index then holds every member, finished ones included, so
that a parent's success costs O(its children) and a failure O(the descendants
it blocks), never O(run size). A run whose jobs have all finished is
forgotten here; the ledger keeps it, and a later join or replay loads it back
(``load``).

Job ids are handed out in dependency order (parents before children, in one
request and across joins), and a run replay re-arms jobs in place: so a
member's parents always have smaller ids, and adding members in id order
rebuilds the index after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import states as S
from ..errors import IllegalTransition, NotFound, ValidationFailed
from .commands import JobSpec
from .job import Job, JobMeta
from .records import Changed, Record, RunChanged

if TYPE_CHECKING:
    from .engine import Engine

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, CANCELED)

# DAG index node states (the same values in the kernel and its twin)
_WAITING, _READY, _DONE, _DEAD, _BLOCKED = 0, 1, 2, 3, 4
_NO_META = JobMeta()

#: a run member as a store gives it back: (jid, state, parents, key)
Member = tuple[int, int, tuple[int, ...], str | None]


def member(jid: int, state: int, meta: JobMeta | None) -> Member:
    """A run's job as ``Runs.load`` takes it."""
    meta = meta or _NO_META
    return (jid, state, meta.parents or (), meta.key)


class Run:
    """A run's identity and the counts its status is derived from."""

    __slots__ = (
        "active",
        "blocked",
        "canceled",
        "created",
        "failed",
        "keys",
        "members",
        "run_id",
        "status",
        "tenant",
        "token",
    )

    def __init__(
        self, run_id: str, tenant: int, token: str | None, created: int, status: str = RUNNING
    ) -> None:
        self.run_id = run_id
        self.tenant = tenant
        self.token = token
        self.created = created
        self.status = status
        self.keys: dict[str, int] = {}
        self.members: list[int] = []
        self.active = 0  # members pending, ready or leased
        self.blocked = 0  # live members blocked by a failed ancestor
        self.failed = 0  # members dead or canceled
        self.canceled = False  # the operator canceled the run

    def derived_status(self) -> str:
        if self.active:
            return RUNNING
        if not (self.blocked or self.failed):
            return SUCCEEDED
        return CANCELED if self.canceled else FAILED


def wiring_order(
    specs: Sequence[JobSpec],
    known: dict[str, int],
    require_keys: bool,
    positions: Sequence[int] | None = None,
) -> list[int]:
    """Check a batch's keys and ``dependsOn`` against itself and the run's
    ``known`` keys; return the batch's indexes with parents before children.
    A duplicate or missing key, a dangling reference or a cycle refuses the
    whole batch. ``positions``: where each spec stood in the request (messages)."""
    at = positions or range(len(specs))
    problems: list[dict[str, str]] = []
    batch = _batch_keys(specs, known, require_keys, problems, at)
    children: list[list[int]] = [[] for _ in specs]
    unmet = [0] * len(specs)
    for index, spec in enumerate(specs):
        for dep in dict.fromkeys(spec.depends_on):
            parent = batch.get(dep)
            if parent is not None:
                children[parent].append(index)
                unmet[index] += 1
            elif dep not in known:
                problems.append(
                    {"field": f"jobs[{at[index]}].dependsOn", "problem": f"unknown key {dep!r}"}
                )
    if problems:
        raise ValidationFailed("invalid run wiring: the batch was refused whole", details=problems)
    order = [index for index in range(len(specs)) if not unmet[index]]
    for index in order:  # Kahn's algorithm; ``order`` grows while it is walked
        for child in children[index]:
            unmet[child] -= 1
            if not unmet[child]:
                order.append(child)
    if len(order) < len(specs):
        cycle = "part of a dependency cycle"
        raise ValidationFailed(
            "dependsOn forms a cycle",
            details=[
                {"field": f"jobs[{at[i]}].dependsOn", "problem": cycle}
                for i in range(len(specs))
                if unmet[i]
            ],
        )
    return order


def _batch_keys(
    specs: Sequence[JobSpec],
    known: dict[str, int],
    require_keys: bool,
    problems: list[dict[str, str]],
    at: Sequence[int],
) -> dict[str, int]:
    """Key -> index of the batch's keyed jobs; duplicates and missing keys are problems."""
    batch: dict[str, int] = {}
    for index, spec in enumerate(specs):
        key = spec.meta.key if spec.meta is not None else None
        if key is None:
            if require_keys:
                problems.append({"field": f"jobs[{at[index]}].key", "problem": "required in a run"})
        elif key in known or key in batch:
            problems.append(
                {"field": f"jobs[{at[index]}].key", "problem": f"duplicate key {key!r}"}
            )
        else:
            batch[key] = index
    return batch


class Runs:
    """The engine's run book: it owns the DAG index and the live runs."""

    def __init__(self, engine: Engine, kernels: Any) -> None:
        self.engine = engine
        self.dag = kernels.DagIndex()
        self.live: dict[str, Run] = {}
        self.tokens: dict[tuple[int, str], str] = {}
        self._retired: list[tuple[Job, int]] = []

    # -- queries ------------------------------------------------------------------
    def find(self, tid: int, run_id: str) -> Run | None:
        run = self.live.get(run_id)
        return run if run is not None and run.tenant == tid else None

    def waiting(self, jid: int) -> bool:
        """True for a pending job that waits on parents rather than on a timer."""
        return bool(self.dag.state(jid) == _WAITING)

    # -- creating and joining -------------------------------------------------------
    def submit(
        self,
        now: int,
        tid: int,
        run: Run,
        specs: Sequence[JobSpec],
        require_keys: bool,
        positions: Sequence[int] | None = None,
    ) -> tuple[list[Job], list[Record]]:
        """Create wired jobs in ``run``; the caller checked the specs themselves."""
        if not specs:
            return [], []
        order = wiring_order(specs, run.keys, require_keys, positions)
        engine = self.engine
        was = run.status
        by_index: dict[int, Job] = {}
        batch_keys: dict[str, int] = {}
        for index in order:
            spec = specs[index]
            meta = spec.meta or _NO_META
            jid = engine.next_jid
            engine.next_jid = jid + 1
            parents = tuple(
                dict.fromkeys(
                    batch_keys[dep] if dep in batch_keys else run.keys[dep]
                    for dep in spec.depends_on
                )
            )
            node = self.dag.add(jid, parents)
            wired = JobMeta(
                meta.project, meta.correlation_id, meta.idempotency_key, meta.source_host,
                run.run_id, meta.key, parents or None, meta.replay_of,
            )  # fmt: skip
            if node == _BLOCKED:
                state = S.BLOCKED
                run.blocked += 1
            else:
                state = S.READY if node == _READY and spec.not_before <= now else S.PENDING
                run.active += 1
            job = engine.new_job(jid, tid, spec, now, wired, state)
            if meta.key is not None:
                batch_keys[meta.key] = jid
            by_index[index] = job
            run.members.append(jid)
        run.keys.update(batch_keys)
        jobs = [by_index[index] for index in range(len(specs))]
        records: list[Record] = []
        if run.derived_status() != was or run.run_id not in self.live:
            run.status = run.derived_status()
            records.append(self._changed(now, run))
        self.live[run.run_id] = run
        return jobs, records

    def new_run(self, now: int, tid: int, run_id: str, token: str | None) -> Run:
        if run_id in self.live:
            raise ValidationFailed(f"run {run_id} exists already")
        run = Run(run_id, tid, token, now)
        if token is not None:
            self.tokens[(tid, token)] = run_id
        return run

    # -- finishing ----------------------------------------------------------------------
    def retired(self, job: Job, was: int) -> None:
        """Note a member that just reached a terminal state (``was``: its state before)."""
        self._retired.append((job, was))

    def settle(self, now: int) -> list[Record]:
        """Propagate what the noted members' ends mean: children that became ready,
        descendants blocked, run statuses. Called at the end of every command."""
        if not self._retired:
            return []
        done, self._retired = self._retired, []
        touched: dict[str, Run] = {}
        succeeded: list[int] = []
        blocked: list[int] = []
        for job, was in done:
            run = self.live[job.meta.run_id]
            touched[run.run_id] = run
            if was == S.BLOCKED:
                run.blocked -= 1
            else:
                run.active -= 1
            if job.state == S.SUCCEEDED:
                succeeded.append(job.jid)
                continue
            run.failed += 1
            if self.dag.state(job.jid) in (_WAITING, _READY):
                blocked.extend(self.dag.fail(job.jid))
        records: list[Record] = []
        if succeeded:
            records.extend(self._release(now, self.dag.complete_many(succeeded)))
        if blocked:
            records.extend(self._block(now, blocked))
        for run in touched.values():
            records.extend(self._restatus(now, run))
        return records

    def _release(self, now: int, jids: list[int]) -> list[Record]:
        """Children whose parents all succeeded: claimable, or timed by their not-before."""
        engine = self.engine
        ready: list[Job] = []
        for jid in jids:
            job = engine.jobs[jid]
            if job.not_before > now:
                engine.timers.add(jid, job.not_before)
            else:
                engine.move(job, S.READY)
                ready.append(job)
        if not ready:
            return []
        engine.enqueue(ready)
        return [Changed(now, ready, S.READY, "parents_succeeded")]

    def _block(self, now: int, jids: list[int]) -> list[Record]:
        engine = self.engine
        jobs = [engine.jobs[jid] for jid in jids]
        for job in jobs:
            engine.move(job, S.BLOCKED)
            run = self.live[job.meta.run_id]
            run.active -= 1
            run.blocked += 1
        return [Changed(now, jobs, S.BLOCKED, "upstream_failed")]

    def _restatus(self, now: int, run: Run) -> list[Record]:
        records: list[Record] = []
        status = run.derived_status()
        if status != run.status:
            run.status = status
            records.append(self._changed(now, run))
        if not run.active and not run.blocked:
            self.forget(run)
        return records

    def drop_idle(self, run_id: str) -> None:
        """Forget a run loaded back from the ledger for a command that was refused."""
        run = self.live.get(run_id)
        if run is not None and not run.active and not run.blocked:
            self.forget(run)

    def forget(self, run: Run) -> None:
        """Drop a run none of whose jobs is live any more (the ledger keeps it)."""
        discard = self.dag.discard
        for jid in run.members:
            discard(jid)
        self.live.pop(run.run_id, None)

    def _changed(self, now: int, run: Run) -> RunChanged:
        tenant = self.engine.tenants.name(run.tenant)
        return RunChanged(now, run.run_id, tenant, run.token, run.created, run.status)

    # -- operator actions -------------------------------------------------------------
    def cancel(self, now: int, run: Run) -> tuple[list[Job], list[Record]]:
        """Cancel every live job of the run, leased ones included."""
        engine = self.engine
        run.canceled = True
        jobs = [engine.jobs[jid] for jid in run.members if jid in engine.jobs]
        for job in jobs:
            engine.withdraw(job, now)
            # not noted for propagation: every member goes, none is blocked by another
            engine.retire(now, job, S.CANCELED, job.last_token, "canceled", propagate=False)
        run.failed += len(jobs)
        run.active = run.blocked = 0
        records: list[Record] = []
        if jobs:
            records.append(Changed(now, jobs, S.CANCELED, "run_canceled"))
        records.extend(self._restatus(now, run))
        return jobs, records

    def replay_targets(self, run: Run, jids: Iterable[int]) -> list[int]:
        """The finished jobs a replay of ``jids`` revives: each named failed job,
        and for a named blocked job the failed ancestors that block it."""
        dag = self.dag
        revive: set[int] = set()
        for jid in jids:
            state = dag.state(jid)
            if jid not in run.members or state == -1:
                raise NotFound(f"job {jid} is not part of run {run.run_id}")
            if state == _DEAD:
                revive.add(jid)
            elif state == _BLOCKED:
                revive.update(self._failed_ancestors(jid))
            else:
                raise IllegalTransition(jid, _NODE_NAMES[state], "replayed")
        return sorted(revive)

    def _failed_ancestors(self, jid: int) -> list[int]:
        dag = self.dag
        seen = {jid}
        todo = deque([jid])
        found = []
        while todo:
            for parent in dag.parents(todo.popleft()):
                if parent in seen:
                    continue
                seen.add(parent)
                state = dag.state(parent)
                if state == _DEAD:
                    found.append(parent)
                elif state == _BLOCKED:
                    todo.append(parent)
        return found

    def replay(self, now: int, run: Run, revive: list[Job]) -> tuple[list[Job], list[Record]]:
        """Bring failed members back (in id order) and re-arm everything they blocked.

        ``revive`` are the failed jobs rebuilt from the ledger; each starts a new
        series of attempts. Succeeded members are kept as they are."""
        engine = self.engine
        dag = self.dag
        ready: list[Job] = []
        pending: list[Job] = []
        for job in sorted(revive, key=lambda j: j.jid):
            node = dag.reset(job.jid)
            job.attempt = 0
            engine.jobs[job.jid] = job
            target = S.READY if node == _READY and job.not_before <= now else S.PENDING
            engine.move(job, target, revive=True)
            (ready if target == S.READY else pending).append(job)
            if node == _READY and target == S.PENDING:
                engine.timers.add(job.jid, job.not_before)
            run.failed -= 1
            run.active += 1
        rearmed = self._rearm([job.jid for job in revive], run)
        if ready:
            engine.enqueue(ready)
        records: list[Record] = []
        if ready:
            records.append(Changed(now, ready, S.READY, "replayed"))
        if pending or rearmed:
            records.append(Changed(now, pending + rearmed, S.PENDING, "replayed"))
        records.extend(self._restatus(now, run))
        return ready + pending + rearmed, records

    def _rearm(self, roots: list[int], run: Run) -> list[Job]:
        """Blocked descendants of ``roots`` whose parents can all run again, in id
        (hence dependency) order, back to pending."""
        dag = self.dag
        seen: set[int] = set(roots)
        todo = deque(roots)
        below: list[int] = []
        while todo:
            for child in dag.children(todo.popleft()):
                if child not in seen and dag.state(child) == _BLOCKED:
                    seen.add(child)
                    below.append(child)
                    todo.append(child)
        engine = self.engine
        rearmed: list[Job] = []
        for jid in sorted(below):
            if dag.reset(jid) == _BLOCKED:
                continue  # another failed ancestor still blocks it
            job = engine.jobs[jid]
            engine.move(job, S.PENDING)
            run.blocked -= 1
            run.active += 1
            rearmed.append(job)
        return rearmed

    # -- recovery ---------------------------------------------------------------------
    def load(self, run: Run, members: Iterable[Member]) -> None:
        """Rebuild a run's DAG from its members; live members must already be in
        the engine's job table."""
        dag = self.dag
        for jid, state, parents, key in sorted(members, key=lambda m: m[0]):
            node = dag.add(jid, parents)
            run.members.append(jid)
            if key is not None:
                run.keys[key] = jid
            if state == S.SUCCEEDED:
                if node == _READY:
                    dag.complete_many([jid])
            elif state in (S.DEAD, S.CANCELED):
                run.failed += 1
                if node in (_WAITING, _READY):
                    dag.fail(jid)
            elif state == S.BLOCKED:
                run.blocked += 1
            else:
                run.active += 1
        run.status = run.derived_status()
        if run.active or run.blocked:
            self.live[run.run_id] = run


_NODE_NAMES = ("pending", "ready", "succeeded", "dead", "blocked")
