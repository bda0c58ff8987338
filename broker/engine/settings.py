"""The engine's knobs, parsed once by ``broker.config`` and passed in frozen."""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class EngineSettings:
    default_max_attempts: int = 5
    default_lease_ms: int = 30_000
    max_lease_ms: int = HOUR_MS
    retry_base_ms: int = 1_000
    retry_cap_ms: int = 10 * MINUTE_MS
    retry_after_cap_ms: int = HOUR_MS
    # how long a finished job's idempotency key still dedupes submissions
    idempotency_retention_ms: int = 24 * HOUR_MS
    # finished jobs remembered in memory so a repeated ack is answered the same
    recent_finished: int = 100_000
    seed: int = 0
