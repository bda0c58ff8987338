"""Ready queues (pure-Python twin and specification of ``ready_queues.pyx``).

Claimable jobs live in one queue per (tenant, job type). A queue has ten
priority lanes (0..9, higher first) and each lane is FIFO. Jobs, tenants and
job types are non-negative ints chosen by the caller.

Removal is lazy: ``remove`` forgets the job's membership at once (O(1)) and the
stale lane entry is skipped when it reaches the head. Every entry carries a
sequence number that is unique for the life of the structure, so a job that is
removed and pushed again can never be confused with its stale entry.

Fairness between tenants is deficit round robin with a job as the unit: each
job type keeps a ring of the tenants that have ready jobs of that type; the
tenant at the head of the ring may take up to ``weight`` jobs (its credit)
before it moves to the back. Credit left over when a pop is satisfied is kept,
so fairness holds across pops, not only inside one.

Exact algorithm (the native kernel must reproduce it step for step):

* ``push`` appends the tenant to the back of the type's ring when the queue is
  not held and the tenant is not already in that ring.
* a ring turn looks at the head tenant; if its queue is empty or held it is
  dropped from the ring (credit reset to 0) and the next head is looked at.
  Otherwise, when the credit is 0 it becomes the tenant's weight; the turn pops
  ``min(credit, remaining)`` jobs in priority then FIFO order. When the queue
  is then empty the tenant leaves the ring (credit 0); otherwise when the
  credit is spent it moves to the back.
* ``pop_many(k, types)`` over all tenants gives one ring turn to each type in
  the order given (duplicates ignored), again and again, until ``k`` jobs are
  taken or a whole pass takes nothing.
* ``pop_many(k, types, tenant)`` for one tenant ignores the rings and takes
  strictly by priority (higher first), then sequence (lower first), across
  the tenant's queues of the given types.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

PRIORITIES = 10


class _Queue:
    __slots__ = ("depth", "held", "lanes")

    def __init__(self) -> None:
        self.lanes: list[deque[tuple[int, int]]] = [deque() for _ in range(PRIORITIES)]
        self.depth = 0
        self.held = False


class ReadyQueues:
    """Per (tenant, job type) priority + FIFO queues with DRR fairness."""

    def __init__(self) -> None:
        self._queues: dict[tuple[int, int], _Queue] = {}
        # job -> (seq, tenant, jtype, priority) while the job is queued
        self._where: dict[int, tuple[int, int, int, int]] = {}
        self._seq = 0
        self._front_seq = 0
        self._rings: dict[int, deque[int]] = {}
        self._in_ring: set[tuple[int, int]] = set()
        self._credit: dict[int, int] = {}
        self._weights: dict[int, int] = {}

    # -- inspection -------------------------------------------------------
    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, job: object) -> bool:
        return job in self._where

    def depth(self, tenant: int, jtype: int) -> int:
        queue = self._queues.get((tenant, jtype))
        return 0 if queue is None else queue.depth

    def is_held(self, tenant: int, jtype: int) -> bool:
        queue = self._queues.get((tenant, jtype))
        return False if queue is None else queue.held

    def weight(self, tenant: int) -> int:
        return self._weights.get(tenant, 1)

    # -- configuration ----------------------------------------------------
    def set_weight(self, tenant: int, weight: int) -> None:
        _check_id(tenant, "tenant")
        if weight < 1 or weight > 1_000_000:
            raise ValueError("weight must be 1..1000000")
        self._weights[tenant] = weight

    def set_held(self, tenant: int, jtype: int, held: bool) -> None:
        """Hold a queue (paused, at its concurrency limit): pops skip it."""
        _check_id(tenant, "tenant")
        _check_id(jtype, "jtype")
        queue = self._queue(tenant, jtype)
        queue.held = bool(held)
        if not queue.held and queue.depth:
            self._enter_ring(tenant, jtype)

    # -- writes -----------------------------------------------------------
    def push(self, job: int, tenant: int, jtype: int, priority: int) -> None:
        self._check_push(job, tenant, jtype, priority)
        self._seq += 1
        self._insert(job, tenant, jtype, priority, self._seq, front=False)

    def push_many(
        self,
        jobs: Sequence[int],
        tenants: Sequence[int],
        jtypes: Sequence[int],
        priorities: Sequence[int],
    ) -> None:
        """Push a batch in order; it is checked whole before anything changes."""
        _check_lengths(jobs, tenants, jtypes, priorities)
        seen: set[int] = set()
        for job, tenant, jtype, priority in zip(jobs, tenants, jtypes, priorities, strict=True):
            self._check_push(job, tenant, jtype, priority)
            if job in seen:
                raise ValueError(f"job {job} appears twice in the batch")
            seen.add(job)
        for job, tenant, jtype, priority in zip(jobs, tenants, jtypes, priorities, strict=True):
            self._seq += 1
            self._insert(job, tenant, jtype, priority, self._seq, front=False)

    def push_front_many(
        self,
        jobs: Sequence[int],
        tenants: Sequence[int],
        jtypes: Sequence[int],
        priorities: Sequence[int],
    ) -> None:
        """Return jobs to the head of their lanes, keeping the order given.

        Used when jobs were popped but could not be leased: they go back
        ahead of everything of the same priority.
        """
        _check_lengths(jobs, tenants, jtypes, priorities)
        seen: set[int] = set()
        for job, tenant, jtype, priority in zip(jobs, tenants, jtypes, priorities, strict=True):
            self._check_push(job, tenant, jtype, priority)
            if job in seen:
                raise ValueError(f"job {job} appears twice in the batch")
            seen.add(job)
        for i in range(len(jobs) - 1, -1, -1):
            self._front_seq -= 1
            self._insert(jobs[i], tenants[i], jtypes[i], priorities[i], self._front_seq, front=True)

    def remove(self, job: int) -> bool:
        """Forget a queued job (cancel). Returns False when it was not queued."""
        where = self._where.pop(job, None)
        if where is None:
            return False
        _, tenant, jtype, _ = where
        queue = self._queues[(tenant, jtype)]
        queue.depth -= 1
        if queue.depth == 0:
            for lane in queue.lanes:
                lane.clear()
        return True

    def remove_many(self, jobs: Iterable[int]) -> int:
        removed = 0
        for job in jobs:
            removed += self.remove(job)
        return removed

    def pop_many(self, k: int, jtypes: Sequence[int], tenant: int = -1) -> list[int]:
        """Take up to ``k`` jobs of the given types (all tenants when ``tenant`` < 0)."""
        if k < 0:
            raise ValueError("k must be >= 0")
        types = list(dict.fromkeys(jtypes))
        for jtype in types:
            _check_id(jtype, "jtype")
        out: list[int] = []
        if k == 0 or not types:
            return out
        if tenant >= 0:
            self._pop_tenant(k, types, tenant, out)
            return out
        while len(out) < k:
            before = len(out)
            for jtype in types:
                if len(out) >= k:
                    break
                self._ring_turn(jtype, k - len(out), out)
            if len(out) == before:
                break
        return out

    # -- internals --------------------------------------------------------
    def _queue(self, tenant: int, jtype: int) -> _Queue:
        queue = self._queues.get((tenant, jtype))
        if queue is None:
            queue = self._queues[(tenant, jtype)] = _Queue()
        return queue

    def _check_push(self, job: int, tenant: int, jtype: int, priority: int) -> None:
        _check_id(job, "job")
        _check_id(tenant, "tenant")
        _check_id(jtype, "jtype")
        if not 0 <= priority < PRIORITIES:
            raise ValueError("priority must be 0..9")
        if job in self._where:
            raise ValueError(f"job {job} is already queued")

    def _insert(
        self, job: int, tenant: int, jtype: int, priority: int, seq: int, front: bool
    ) -> None:
        queue = self._queue(tenant, jtype)
        lane = queue.lanes[priority]
        if front:
            lane.appendleft((seq, job))
        else:
            lane.append((seq, job))
        queue.depth += 1
        self._where[job] = (seq, tenant, jtype, priority)
        if not queue.held:
            self._enter_ring(tenant, jtype)

    def _enter_ring(self, tenant: int, jtype: int) -> None:
        if (jtype, tenant) not in self._in_ring:
            self._in_ring.add((jtype, tenant))
            self._rings.setdefault(jtype, deque()).append(tenant)

    def _head(self, queue: _Queue) -> tuple[int, int, int] | None:
        """(priority, seq, job) of the queue's next job, dropping stale entries."""
        where = self._where
        for priority in range(PRIORITIES - 1, -1, -1):
            lane = queue.lanes[priority]
            while lane:
                seq, job = lane[0]
                live = where.get(job)
                if live is not None and live[0] == seq:
                    return priority, seq, job
                lane.popleft()
        return None

    def _take(self, queue: _Queue, lane_priority: int) -> int:
        _, job = queue.lanes[lane_priority].popleft()
        del self._where[job]
        queue.depth -= 1
        return job

    def _pop_queue(self, queue: _Queue, n: int, out: list[int]) -> int:
        taken = 0
        while taken < n:
            head = self._head(queue)
            if head is None:
                break
            out.append(self._take(queue, head[0]))
            taken += 1
        if queue.depth == 0:
            for lane in queue.lanes:
                lane.clear()
        return taken

    def _ring_turn(self, jtype: int, remaining: int, out: list[int]) -> int:
        ring = self._rings.get(jtype)
        while ring:
            tenant = ring[0]
            queue = self._queues.get((tenant, jtype))
            if queue is None or queue.depth == 0 or queue.held:
                ring.popleft()
                self._in_ring.discard((jtype, tenant))
                self._credit[jtype] = 0
                continue
            credit = self._credit.get(jtype, 0)
            if credit <= 0:
                credit = self._weights.get(tenant, 1)
            taken = self._pop_queue(queue, min(credit, remaining), out)
            credit -= taken
            if queue.depth == 0:
                ring.popleft()
                self._in_ring.discard((jtype, tenant))
                credit = 0
            elif credit == 0:
                ring.rotate(-1)
            self._credit[jtype] = credit
            return taken
        return 0

    def _pop_tenant(self, k: int, types: list[int], tenant: int, out: list[int]) -> None:
        queues = []
        for jtype in types:
            queue = self._queues.get((tenant, jtype))
            if queue is not None and queue.depth and not queue.held:
                queues.append(queue)
        while len(out) < k and queues:
            best: tuple[int, int, int] | None = None
            best_queue: _Queue | None = None
            for queue in queues:
                head = self._head(queue)
                if head is None:
                    continue
                if best is None or head[0] > best[0] or (head[0] == best[0] and head[1] < best[1]):
                    best, best_queue = head, queue
            if best is None or best_queue is None:
                break
            out.append(self._take(best_queue, best[0]))
            if best_queue.depth == 0:
                for lane in best_queue.lanes:
                    lane.clear()
                queues.remove(best_queue)


def _check_id(value: int, what: str) -> None:
    if value < 0 or value > 0x7FFF_FFFF_FFFF_FFFF:
        raise ValueError(f"{what} must be a non-negative int64")


def _check_lengths(*columns: Sequence[int]) -> None:
    if len({len(column) for column in columns}) > 1:
        raise ValueError("batch columns must have the same length")
