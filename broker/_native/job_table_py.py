"""Live jobs by id (pure-Python twin and specification of ``job_table.pyx``).

A dict from job id (a non-negative int64) to the job's record, with batch
lookups and deletes so the engine makes one call per request, and with
iteration in id order (``keys``, ``values``, ``items``, ``iter``) so both
implementations list the same jobs in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

_MAX = 0x7FFF_FFFF_FFFF_FFFF


class JobTable(dict[int, Any]):
    def __setitem__(self, job: int, record: Any) -> None:
        if type(job) is not int or not 0 <= job <= _MAX:
            raise ValueError("job must be a non-negative int64")
        dict.__setitem__(self, job, record)

    def get_many(self, jobs: Sequence[int]) -> list[Any]:
        """The record of each job, None where there is none."""
        return list(map(self.get, jobs))

    def pop_many(self, jobs: Iterable[int]) -> None:
        """Delete each job; KeyError at the first one missing (earlier ones stay deleted)."""
        for job in jobs:
            del self[job]

    def keys(self) -> list[int]:  # type: ignore[override]
        return sorted(dict.keys(self))

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[job] for job in self.keys()]

    def items(self) -> list[tuple[int, Any]]:  # type: ignore[override]
        return [(job, self[job]) for job in self.keys()]

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys())
