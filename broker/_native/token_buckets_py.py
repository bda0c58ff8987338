"""Token buckets (pure-Python twin and specification of ``token_buckets.pyx``).

One bucket per key (the engine packs (tenant, source host) into one int).
All arithmetic is integer so that the kernel and its twin agree exactly:

* rates are in milli-tokens per second (1000 = one token a second);
* a bucket's level is kept in micro-tokens, refilled by ``rate`` micro-tokens
  per elapsed millisecond, capped at ``burst`` tokens;
* time is in ms, passed in; a clock that goes backwards refills nothing.

Adaptive refill (AIMD): ``penalise`` (an upstream 429 / retry-after) cuts the
current rate to ``decrease_permille``/1000 of itself (not below
``min_rate``) and pauses the bucket until ``now + retry_after``; ``reward``
(successes) adds ``n`` steps of ``recover_permille``/1000 of the configured
rate (at least 1), never above the configured rate.

A key that was never configured is unlimited: ``take`` grants everything.
"""

from __future__ import annotations

from collections.abc import Sequence

MICRO = 1_000_000
_MAX = 0x7FFF_FFFF_FFFF_FFFF
_MAX_RATE = 1_000_000_000_000  # a million million milli-tokens per second


class _Bucket:
    __slots__ = ("burst", "configured", "last", "level", "paused_until", "penalties", "rate")

    def __init__(self, rate: int, burst: int, now: int) -> None:
        self.configured = rate
        self.rate = rate
        self.burst = burst
        self.level = burst * MICRO
        self.last = now
        self.paused_until = 0
        self.penalties = 0

    def refill(self, now: int) -> None:
        elapsed = now - self.last
        if elapsed > 0:
            self.level = min(self.burst * MICRO, self.level + elapsed * self.rate)
            self.last = now


class TokenBuckets:
    """Adaptive token buckets keyed by int."""

    def __init__(
        self, decrease_permille: int = 500, recover_permille: int = 10, min_rate: int = 1
    ) -> None:
        if not 0 <= decrease_permille <= 1000:
            raise ValueError("decrease_permille must be 0..1000")
        if not 0 <= recover_permille <= 1000:
            raise ValueError("recover_permille must be 0..1000")
        if min_rate < 0 or min_rate > _MAX_RATE:
            raise ValueError("min_rate out of range")
        self._decrease = decrease_permille
        self._recover = recover_permille
        self._min_rate = min_rate
        self._buckets: dict[int, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def configure(self, key: int, rate: int, burst: int, now: int) -> None:
        """Create or reconfigure a bucket; a new one starts full."""
        _check(key, "key")
        _check(now, "now")
        if rate < 0 or rate > _MAX_RATE:
            raise ValueError("rate must be 0..1e12 milli-tokens per second")
        if burst < 1 or burst > 1_000_000_000:
            raise ValueError("burst must be 1..1e9 tokens")
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = _Bucket(rate, burst, now)
            return
        bucket.refill(now)
        bucket.configured = rate
        bucket.rate = rate
        bucket.burst = burst
        bucket.level = min(bucket.level, burst * MICRO)

    def remove(self, key: int) -> bool:
        return self._buckets.pop(key, None) is not None

    def state(self, key: int, now: int) -> tuple[int, int, int, int, int, int] | None:
        """(configured rate, current rate, burst, whole tokens, paused until, penalties)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        bucket.refill(now)
        return (
            bucket.configured,
            bucket.rate,
            bucket.burst,
            bucket.level // MICRO,
            bucket.paused_until,
            bucket.penalties,
        )

    def take(self, key: int, n: int, now: int) -> tuple[int, int]:
        """Take up to ``n`` tokens: (granted, ms until the next token).

        The wait is 0 when everything was granted and -1 when no token will ever come."""
        if n < 0:
            raise ValueError("n must be >= 0")
        bucket = self._buckets.get(key)
        if bucket is None:
            return n, 0
        bucket.refill(now)
        if now < bucket.paused_until:
            return 0, bucket.paused_until - now
        granted = min(n, bucket.level // MICRO)
        bucket.level -= granted * MICRO
        if granted == n:
            return granted, 0
        if bucket.rate == 0:
            return granted, -1
        deficit = MICRO - bucket.level
        return granted, -(-deficit // bucket.rate)

    def take_many(self, keys: Sequence[int], ns: Sequence[int], now: int) -> list[int]:
        """Batch ``take``: returns [granted0, wait0, granted1, wait1, ...]."""
        if len(keys) != len(ns):
            raise ValueError("batch columns must have the same length")
        for n in ns:
            if n < 0:
                raise ValueError("n must be >= 0")
        out: list[int] = []
        for key, n in zip(keys, ns, strict=True):
            granted, wait = self.take(key, n, now)
            out.append(granted)
            out.append(wait)
        return out

    def refund(self, key: int, n: int, now: int) -> None:
        """Give back tokens that were taken but not used."""
        if n < 0:
            raise ValueError("n must be >= 0")
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        bucket.refill(now)
        bucket.level = min(bucket.burst * MICRO, bucket.level + n * MICRO)

    def penalise(self, key: int, now: int, retry_after: int = 0) -> bool:
        """Multiplicative decrease after an upstream 429; False for an unknown key."""
        if retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        bucket.refill(now)
        bucket.rate = max(self._min_rate, bucket.rate * self._decrease // 1000)
        bucket.paused_until = max(bucket.paused_until, now + retry_after)
        bucket.penalties += 1
        return True

    def restore(self, key: int, rate: int, paused_until: int, penalties: int) -> bool:
        """Put back a bucket's adaptive state as it was kept (across a restart): its
        current rate (at most the configured one), pause and penalty count; the
        tokens stay as they are. False for an unknown key."""
        if rate < 0 or rate > _MAX_RATE:
            raise ValueError("rate must be 0..1e12 milli-tokens per second")
        _check(paused_until, "paused_until")
        _check(penalties, "penalties")
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        bucket.rate = min(rate, bucket.configured)
        bucket.paused_until = paused_until
        bucket.penalties = penalties
        return True

    def reward(self, key: int, n: int, now: int) -> bool:
        """Additive recovery after ``n`` successes; False for an unknown key."""
        if n < 0:
            raise ValueError("n must be >= 0")
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        bucket.refill(now)
        step = max(1, bucket.configured * self._recover // 1000)
        bucket.rate = min(bucket.configured, bucket.rate + n * step)
        return True


def _check(value: int, what: str) -> None:
    if value < 0 or value > _MAX:
        raise ValueError(f"{what} must be a non-negative int64")
