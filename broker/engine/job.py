"""The engine's record of one live job (``broker._native.job_record``) and its
optional descriptive fields (``JobMeta``)."""

from __future__ import annotations

from typing import NamedTuple

# The engine makes its records with ``kernels.Job`` (compiled, or this twin);
# type checkers see the twin, which is the specification.
from .._native.job_record_py import Job as Job


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
