"""Inputs and replies of the engine's commands (plain, immutable values)."""

from __future__ import annotations

from typing import NamedTuple

from .job import Job, JobMeta

PRIORITY_MIN = 0
PRIORITY_MAX = 9
DEFAULT_PRIORITY = 5
MAX_ATTEMPTS_LIMIT = 100

# what a worker may report about an attempt
ACK_STATUSES = frozenset({"succeeded", "failed", "canceled", "timed_out"})

ACCEPTED = "accepted"
CONFLICT = "conflict"
NOT_FOUND = "not_found"


class JobSpec(NamedTuple):
    """One job to submit. ``payload`` is the producer's JSON, kept as bytes.

    Per-job inputs are NamedTuples: cheap to build on the hot path, immutable."""

    job_type: str
    payload: bytes
    priority: int = DEFAULT_PRIORITY
    max_attempts: int | None = None
    lease_ms: int | None = None
    not_before: int = 0
    meta: JobMeta | None = None
    #: run-local keys of the jobs this one waits for (needs ``meta.run_id``)
    depends_on: tuple[str, ...] = ()


class SubmitReply(NamedTuple):
    jid: int
    state: int
    deduplicated: bool
    created: int  # the job's creation time (ms), part of its public id


class RunReply(NamedTuple):
    """A run created (or found again by its token): its jobs in request order."""

    run_id: str
    deduplicated: bool
    jobs: list[SubmitReply]


class Grant(NamedTuple):
    """Jobs leased by one claim: ``jobs[i]`` holds ``tokens[i]`` until ``deadlines[i]``."""

    jobs: list[Job]
    tokens: list[int]
    deadlines: list[int]


EMPTY_GRANT = Grant([], [], [])


class AckItem(NamedTuple):
    """A worker's report on one attempt.

    ``error`` is the worker's error object as JSON bytes (stored as sent);
    ``retryable`` and ``retry_after_ms`` are the parts of it the engine acts on.
    """

    jid: int
    token: int
    status: str
    retryable: bool = True
    retry_after_ms: int = 0
    error: bytes | None = None
    output: bytes | None = None
    throttled: bool = False  # the upstream said "too many requests" (error class http_429)


class AckReply(NamedTuple):
    """The answer to one acked attempt, in the order the attempts were given."""

    outcome: str
    state: int  # -1 unless accepted


class HeartbeatReply(NamedTuple):
    jid: int
    deadline: int  # -1: the lease is lost
