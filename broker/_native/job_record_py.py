"""A live job's record (pure-Python twin and specification of ``job_record.pyx``).

Kept lean because a million of them may be queued at once: plain slots, ints
for tenant and job type (interned by the engine), the payload as the bytes
the producer sent, and the rarely set descriptive fields folded into one
optional meta tuple. The compiled record keeps the same fields as C ints.
"""

from __future__ import annotations

from typing import Any


class Job:
    __slots__ = (
        "attempt",
        "created",
        "jid",
        "jtype",
        "last_status",
        "last_token",
        "lease_ms",
        "max_attempts",
        "meta",
        "not_before",
        "payload",
        "priority",
        "state",
        "tenant",
    )

    def __init__(
        self,
        jid: int,
        tenant: int,
        jtype: int,
        priority: int,
        max_attempts: int,
        lease_ms: int,
        created: int,
        not_before: int,
        payload: bytes,
        meta: Any,
        state: int,
    ) -> None:
        self.jid = jid
        self.tenant = tenant
        self.jtype = jtype
        self.priority = priority
        self.max_attempts = max_attempts
        self.lease_ms = lease_ms
        self.created = created
        self.not_before = not_before
        self.payload = payload
        self.meta = meta
        self.state = state
        self.attempt = 0
        # the last finished lease and what its worker reported, so that the
        # same ack sent twice is answered the same way (idempotent acks)
        self.last_token = 0
        self.last_status = ""

    def __repr__(self) -> str:
        return f"Job(jid={self.jid}, state={self.state}, attempt={self.attempt})"

    # -- batches: what the engine does to every job of a claim or an ack -------------
    @staticmethod
    def all_in(jobs: list[Job | None], tenant: int, state: int) -> bool:
        """Whether every one is a job (not None) of ``tenant`` in ``state``."""
        return all(job is not None and job.tenant == tenant and job.state == state for job in jobs)

    @staticmethod
    def lease_many(jobs: list[Job], state: int) -> None:
        """Each one goes to ``state`` (leased) for its next attempt."""
        for job in jobs:
            job.state = state
            job.attempt += 1

    @staticmethod
    def finish_many(jobs: list[Job], tokens: list[int], state: int, status: str) -> list[Job]:
        """Each one's attempt ``tokens[i]`` ended in ``state`` with ``status``; returns
        the ones with meta (they have more to settle: keys, runs)."""
        if len(tokens) != len(jobs):
            raise ValueError("jobs and tokens differ in length")
        described = []
        for job, token in zip(jobs, tokens, strict=True):
            job.state = state
            job.last_token = token
            job.last_status = status
            if job.meta is not None:
                described.append(job)
        return described
