"""The engine's record of one live job.

Kept lean because a million of them may be queued at once: plain slots, ints
for tenant and job type (interned by the engine), the payload as the bytes
the producer sent, and the rarely set descriptive fields folded into one
optional ``JobMeta``.
"""

from __future__ import annotations

from typing import NamedTuple


class JobMeta(NamedTuple):
    """Descriptive fields a producer may set; none of them drives scheduling.

    A NamedTuple rather than a frozen dataclass: one is built per submitted
    job, and a tuple is several times cheaper to make."""

    project: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    source_host: str | None = None
    run_id: str | None = None
    key: str | None = None
    #: the jobs of the same run this one waits for (resolved from ``dependsOn``)
    parents: tuple[int, ...] | None = None
    #: the public id of the job this one replays (a clone made by ``POST /jobs/{id}/replay``)
    replay_of: str | None = None


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
        meta: JobMeta | None,
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
