"""Timer index (pure-Python twin and specification of ``timer_index.pyx``).

Delayed jobs (retry backoff, not-before) keyed by due time in ms. A job is in
the index at most once; adding it again moves it. A min-heap of
(due, seq, job) with lazy deletion keeps ``add`` O(log n) and ``pop_due``
proportional to what is due. Jobs come out in (due, seq) order, seq being the
order in which they were (last) added.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

_MAX = 0x7FFF_FFFF_FFFF_FFFF


class TimerIndex:
    """job -> due time, popped in due order."""

    def __init__(self) -> None:
        self._due: dict[int, tuple[int, int]] = {}  # job -> (due, seq)
        self._heap: list[tuple[int, int, int]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, job: object) -> bool:
        return job in self._due

    def due_of(self, job: int) -> int:
        """The job's due time, -1 when it is not in the index."""
        entry = self._due.get(job)
        return -1 if entry is None else entry[0]

    def next_due(self) -> int:
        """The earliest due time, -1 when empty."""
        heap = self._heap
        while heap:
            due, seq, job = heap[0]
            if self._due.get(job) == (due, seq):
                return due
            heapq.heappop(heap)
        return -1

    def add(self, job: int, due: int) -> None:
        _check(job, "job")
        _check(due, "due")
        self._seq += 1
        self._due[job] = (due, self._seq)
        heapq.heappush(self._heap, (due, self._seq, job))
        self._maybe_compact()

    def add_many(self, jobs: Sequence[int], dues: Sequence[int]) -> None:
        if len(jobs) != len(dues):
            raise ValueError("batch columns must have the same length")
        for job, due in zip(jobs, dues, strict=True):
            _check(job, "job")
            _check(due, "due")
        for job, due in zip(jobs, dues, strict=True):
            self.add(job, due)

    def remove(self, job: int) -> bool:
        if self._due.pop(job, None) is None:
            return False
        self._maybe_compact()
        return True

    def pop_due(self, now: int, limit: int = -1) -> list[int]:
        """Remove and return the jobs due at or before ``now``, earliest first."""
        out: list[int] = []
        heap = self._heap
        entries = self._due
        while heap and (limit < 0 or len(out) < limit):
            due, seq, job = heap[0]
            if entries.get(job) != (due, seq):
                heapq.heappop(heap)
                continue
            if due > now:
                break
            heapq.heappop(heap)
            del entries[job]
            out.append(job)
        return out

    def _maybe_compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._due):
            self._heap = [(due, seq, job) for job, (due, seq) in self._due.items()]
            heapq.heapify(self._heap)


def _check(value: int, what: str) -> None:
    if value < 0 or value > _MAX:
        raise ValueError(f"{what} must be a non-negative int64")
