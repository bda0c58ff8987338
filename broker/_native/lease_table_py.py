"""Lease table (pure-Python twin and specification of ``lease_table.pyx``).

Maps a leased job to its lease: a fencing token, the worker that holds it and
the deadline (ms). Tokens come from one counter that only grows, so a token is
never issued twice by one table; the caller seeds the counter (``first_token``)
above every token ever issued before, e.g. from a durable boot epoch.

Deadlines are indexed in a min-heap of (deadline, token, job) with lazy
deletion: an entry is live only while the job still holds that token with that
deadline. ``pop_expired`` therefore touches only what is due, never the whole
table. The heap is rebuilt when stale entries outnumber live ones.

Expired leases are returned in (deadline, token) order.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

_MAX = 0x7FFF_FFFF_FFFF_FFFF


class LeaseTable:
    """job -> (token, worker, deadline) with a deadline index."""

    def __init__(self, first_token: int = 1) -> None:
        if first_token < 1 or first_token > _MAX:
            raise ValueError("first_token must be a positive int64")
        self._next = first_token
        # job -> [token, worker, deadline]
        self._leases: dict[int, tuple[int, int, int]] = {}
        self._heap: list[tuple[int, int, int]] = []

    # -- inspection -------------------------------------------------------
    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, job: object) -> bool:
        return job in self._leases

    @property
    def next_token(self) -> int:
        return self._next

    def token_of(self, job: int) -> int:
        """The job's current token, 0 when it holds no lease."""
        lease = self._leases.get(job)
        return 0 if lease is None else lease[0]

    def worker_of(self, job: int) -> int:
        """The worker holding the job's lease, -1 when none."""
        lease = self._leases.get(job)
        return -1 if lease is None else lease[1]

    def deadline_of(self, job: int) -> int:
        """The job's lease deadline, -1 when it holds no lease."""
        lease = self._leases.get(job)
        return -1 if lease is None else lease[2]

    def next_deadline(self) -> int:
        """The earliest live deadline, -1 when the table is empty."""
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else -1

    def validate(self, job: int, token: int) -> bool:
        lease = self._leases.get(job)
        return lease is not None and lease[0] == token

    def validate_many(self, jobs: Sequence[int], tokens: Sequence[int]) -> list[bool]:
        _same_length(jobs, tokens)
        leases = self._leases
        out = []
        for job, token in zip(jobs, tokens, strict=True):
            lease = leases.get(job)
            out.append(lease is not None and lease[0] == token)
        return out

    # -- writes -----------------------------------------------------------
    def grant_many(self, jobs: Sequence[int], worker: int, deadline: int) -> list[int]:
        """Lease every job to ``worker`` until ``deadline``; returns fresh tokens.

        Refuses the whole batch (ValueError) if a job is already leased or
        appears twice, or if a token would pass the int64 range.
        """
        _check(worker, "worker")
        _check(deadline, "deadline")
        seen: set[int] = set()
        for job in jobs:
            _check(job, "job")
            if job in self._leases or job in seen:
                raise ValueError(f"job {job} is already leased")
            seen.add(job)
        if self._next + len(jobs) - 1 > _MAX:
            raise ValueError("token counter exhausted")
        tokens = []
        for job in jobs:
            token = self._next
            self._next += 1
            self._leases[job] = (token, worker, deadline)
            heapq.heappush(self._heap, (deadline, token, job))
            tokens.append(token)
        return tokens

    def restore(self, job: int, token: int, worker: int, deadline: int) -> None:
        """Re-install a lease loaded from the store (recovery)."""
        _check(job, "job")
        _check(worker, "worker")
        _check(deadline, "deadline")
        if token < 1 or token > _MAX:
            raise ValueError("token must be a positive int64")
        if job in self._leases:
            raise ValueError(f"job {job} is already leased")
        self._leases[job] = (token, worker, deadline)
        heapq.heappush(self._heap, (deadline, token, job))
        if token >= self._next:
            self._next = token + 1

    def extend_many(self, jobs: Sequence[int], tokens: Sequence[int], deadline: int) -> list[bool]:
        """Move each valid lease's deadline to ``deadline``; False for a stale token."""
        _same_length(jobs, tokens)
        _check(deadline, "deadline")
        out = []
        for job, token in zip(jobs, tokens, strict=True):
            lease = self._leases.get(job)
            if lease is None or lease[0] != token:
                out.append(False)
                continue
            if lease[2] != deadline:
                self._leases[job] = (token, lease[1], deadline)
                heapq.heappush(self._heap, (deadline, token, job))
                self._maybe_compact()
            out.append(True)
        return out

    def release_many(self, jobs: Sequence[int], tokens: Sequence[int]) -> list[bool]:
        """End each lease whose token matches; False (and no change) otherwise."""
        _same_length(jobs, tokens)
        out = []
        for job, token in zip(jobs, tokens, strict=True):
            lease = self._leases.get(job)
            if lease is None or lease[0] != token:
                out.append(False)
                continue
            del self._leases[job]
            out.append(True)
        self._maybe_compact()
        return out

    def revoke(self, job: int) -> int:
        """End a job's lease whatever its token (operator cancel); returns the token or 0."""
        lease = self._leases.pop(job, None)
        if lease is None:
            return 0
        self._maybe_compact()
        return lease[0]

    def pop_expired(self, now: int, limit: int = -1) -> list[int]:
        """Remove leases with deadline <= now; returns [job, token, job, token, ...]."""
        out: list[int] = []
        heap = self._heap
        leases = self._leases
        while heap and (limit < 0 or len(out) < 2 * limit):
            deadline, token, job = heap[0]
            lease = leases.get(job)
            if lease is None or lease[0] != token or lease[2] != deadline:
                heapq.heappop(heap)
                continue
            if deadline > now:
                break
            heapq.heappop(heap)
            del leases[job]
            out.append(job)
            out.append(token)
        return out

    # -- internals --------------------------------------------------------
    def _drop_stale_head(self) -> None:
        heap = self._heap
        leases = self._leases
        while heap:
            deadline, token, job = heap[0]
            lease = leases.get(job)
            if lease is not None and lease[0] == token and lease[2] == deadline:
                return
            heapq.heappop(heap)

    def _maybe_compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._leases):
            self._heap = [
                (deadline, token, job) for job, (token, _, deadline) in self._leases.items()
            ]
            heapq.heapify(self._heap)


def _check(value: int, what: str) -> None:
    if value < 0 or value > _MAX:
        raise ValueError(f"{what} must be a non-negative int64")


def _same_length(a: Sequence[int], b: Sequence[int]) -> None:
    if len(a) != len(b):
        raise ValueError("batch columns must have the same length")
