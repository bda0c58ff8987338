"""Recently finished jobs, kept reachable so a repeated ack gets the same answer.

Two generations of plain dicts: new finishes go into the young one; when it
holds ``capacity`` jobs it becomes the old one and the previous old one is
dropped whole. A finished job therefore stays reachable for at least
``capacity`` and at most ``2 * capacity`` later finishes, and the hot path
pays one C-level dict update per batch instead of ring bookkeeping per job.
"""

from __future__ import annotations

from collections.abc import Sequence

from .job import Job


class RecentJobs:
    __slots__ = ("_capacity", "_old", "_young")

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._young: dict[int, Job] = {}
        self._old: dict[int, Job] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def get(self, jid: int) -> Job | None:
        job = self._young.get(jid)
        return job if job is not None else self._old.get(jid)

    def add(self, job: Job) -> None:
        self._young[job.jid] = job
        self._rotate()

    def add_many(self, jids: Sequence[int], jobs: Sequence[Job]) -> None:
        self._young.update(zip(jids, jobs, strict=True))
        self._rotate()

    def _rotate(self) -> None:
        if len(self._young) >= self._capacity:
            self._old = self._young
            self._young = {}
