"""Retry delays: exponential backoff with full jitter, from a seeded RNG.

Attempt ``n`` (1-based) that failed waits a uniformly random time in
``[0, min(cap, base * 2**(n-1))]`` ("full jitter", which spreads a herd of
retries instead of synchronising it). A worker's ``retryAfter`` is a floor:
the upstream told us when it will talk to us again. Both are capped.
"""

from __future__ import annotations

import random


class RetryPolicy:
    def __init__(self, base_ms: int, cap_ms: int, retry_after_cap_ms: int, seed: int) -> None:
        if base_ms < 0 or cap_ms < base_ms or retry_after_cap_ms < 0:
            raise ValueError("need 0 <= base_ms <= cap_ms and retry_after_cap_ms >= 0")
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.retry_after_cap_ms = retry_after_cap_ms
        self._rng = random.Random(seed)

    def ceiling(self, attempt: int) -> int:
        """The largest backoff attempt ``attempt`` may draw (before retry-after)."""
        exponent = min(max(attempt - 1, 0), 62)
        return min(self.cap_ms, self.base_ms << exponent)

    def delay(self, attempt: int, retry_after_ms: int = 0) -> int:
        """Milliseconds to wait before the attempt after ``attempt``."""
        backoff = self._rng.randint(0, self.ceiling(attempt))
        floor = min(max(retry_after_ms, 0), self.retry_after_cap_ms)
        return max(backoff, floor)
