"""The service's knobs (parsed once by ``broker.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine import EngineSettings


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    engine: EngineSettings = field(default_factory=EngineSettings)
    # rows waiting to be written past which durable requests get BACKPRESSURE
    max_backlog: int = 200_000
    # longest long-poll a claim may ask for
    max_wait_ms: int = 30_000
    # a claim's row waits this long for its ack, so both are written as one row
    # (claims are write-behind: a crash loses at most this much of them)
    claim_hold_ms: int = 1_000
    # live (unfinished) jobs past which submissions get RATE_LIMITED (429): per
    # tenant, and in all; 0 turns a limit off
    max_live_per_tenant: int = 0
    max_live: int = 0
    # finished jobs (with their history) are deleted this long after they finished;
    # at least the idempotency retention, so restarts still dedupe; 0 keeps them
    retention_ms: int = 7 * 24 * 3_600_000
