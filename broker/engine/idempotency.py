"""Idempotency keys: per tenant, a key names the job it created.

While the job is live the engine answers from the job itself; once it has
finished, its final state and creation time are kept here for the retention
time, so a resubmission with the same key still gets that job back.
"""

from __future__ import annotations

from collections import deque


class IdempotencyKeys:
    __slots__ = ("_expiry", "_final", "_jobs", "retention_ms")

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self._jobs: dict[tuple[int, str], int] = {}  # (tenant, key) -> job
        self._final: dict[int, tuple[int, int]] = {}  # finished job -> (state, created)
        # (expires at, tenant, key, job), in the order jobs finished
        self._expiry: deque[tuple[int, int, str, int]] = deque()

    def job_for(self, tenant: int, key: str) -> int | None:
        return self._jobs.get((tenant, key))

    def claim(self, tenant: int, key: str, jid: int) -> None:
        """A new job now owns this key."""
        self._jobs[(tenant, key)] = jid

    def finished(self, tenant: int, key: str, jid: int, state: int, created: int, at: int) -> None:
        """The key's job finished at ``at``: remember how, until the retention ends."""
        self._jobs[(tenant, key)] = jid
        self._final[jid] = (state, created)
        self._expiry.append((at + self.retention_ms, tenant, key, jid))

    def final(self, jid: int) -> tuple[int, int]:
        """(state, created) of a finished job a key points at."""
        return self._final[jid]

    def expire(self, now: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, tenant, key, jid = expiry.popleft()
            if self._jobs.get((tenant, key)) == jid:
                del self._jobs[(tenant, key)]
            self._final.pop(jid, None)
