"""Pure, synchronous, deterministic job state machine (no I/O, time passed in)."""

from .. import states
from .commands import AckItem, AckReply, Grant, HeartbeatReply, JobSpec, SubmitReply
from .engine import Engine
from .job import Job, JobMeta
from .records import Changed, Extended, Finished, Leased, Record, Submitted
from .settings import EngineSettings

__all__ = [
    "AckItem",
    "AckReply",
    "Changed",
    "Engine",
    "EngineSettings",
    "Extended",
    "Finished",
    "Grant",
    "HeartbeatReply",
    "Job",
    "JobMeta",
    "JobSpec",
    "Leased",
    "Record",
    "SubmitReply",
    "Submitted",
    "states",
]
