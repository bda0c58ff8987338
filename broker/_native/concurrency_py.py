"""Concurrency counters (pure-Python twin and specification of ``concurrency.pyx``).

In-flight counts per key (the engine packs (tenant, job type) into one int)
against an optional limit. ``acquire`` grants up to n without passing the
limit; lowering a limit below the in-flight count preempts nothing, it only
stops new grants. A key with no limit still counts what is in flight.
"""

from __future__ import annotations

from collections.abc import Sequence

UNLIMITED = -1
_MAX = 0x7FFF_FFFF_FFFF_FFFF


class ConcurrencyCounters:
    """key -> (in flight, limit)."""

    def __init__(self) -> None:
        self._inflight: dict[int, int] = {}
        self._limits: dict[int, int] = {}

    def limit(self, key: int) -> int:
        return self._limits.get(key, UNLIMITED)

    def inflight(self, key: int) -> int:
        return self._inflight.get(key, 0)

    def available(self, key: int) -> int:
        """Slots left under the limit, -1 when unlimited."""
        limit = self._limits.get(key, UNLIMITED)
        if limit == UNLIMITED:
            return UNLIMITED
        return max(0, limit - self._inflight.get(key, 0))

    def set_limit(self, key: int, limit: int) -> None:
        """Set a limit (>= 0), or remove it with -1."""
        _check(key)
        if limit < UNLIMITED or limit > 0x7FFF_FFFF:
            raise ValueError("limit must be -1 (unlimited) or 0..2**31-1")
        if limit == UNLIMITED:
            self._limits.pop(key, None)
        else:
            self._limits[key] = limit

    def acquire(self, key: int, n: int) -> int:
        _check(key)
        if n < 0:
            raise ValueError("n must be >= 0")
        held = self._inflight.get(key, 0)
        limit = self._limits.get(key, UNLIMITED)
        granted = n if limit == UNLIMITED else max(0, min(n, limit - held))
        if granted:
            self._inflight[key] = held + granted
        return granted

    def acquire_many(self, keys: Sequence[int], ns: Sequence[int]) -> list[int]:
        if len(keys) != len(ns):
            raise ValueError("batch columns must have the same length")
        for key, n in zip(keys, ns, strict=True):
            _check(key)
            if n < 0:
                raise ValueError("n must be >= 0")
        return [self.acquire(key, n) for key, n in zip(keys, ns, strict=True)]

    def release(self, key: int, n: int) -> None:
        self.release_many([key], [n])

    def release_many(self, keys: Sequence[int], ns: Sequence[int]) -> None:
        """Release slots; refuses the whole batch if any key would go below zero."""
        if len(keys) != len(ns):
            raise ValueError("batch columns must have the same length")
        totals: dict[int, int] = {}
        for key, n in zip(keys, ns, strict=True):
            if n < 0:
                raise ValueError("n must be >= 0")
            totals[key] = totals.get(key, 0) + n
        for key, n in totals.items():
            if n > self._inflight.get(key, 0):
                raise ValueError(f"release of {n} exceeds in-flight count of key {key}")
        for key, n in totals.items():
            left = self._inflight[key] - n if n else self._inflight.get(key, 0)
            if left:
                self._inflight[key] = left
            else:
                self._inflight.pop(key, None)


def _check(key: int) -> None:
    if key < 0 or key > _MAX:
        raise ValueError("key must be a non-negative int64")
