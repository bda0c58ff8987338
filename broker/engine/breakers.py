"""Circuit breakers per key: stop starting attempts against something that keeps failing.

Closed, a breaker counts outcomes in a sliding window: a ring of ``buckets``
time buckets of ``window_ms // buckets`` each, rotated by ``now``, so a key
costs a fixed few lists however many attempts it sees. The window is the
current bucket and the ``buckets - 1`` before it: it spans between
``window_ms - bucket_ms`` and ``window_ms``. When at least ``min_volume``
attempts in the window failed at ``failure_rate_permille`` or more, it opens and
nothing starts for ``cooldown_ms``. Then it is half-open: up to ``probes``
attempts at a time may start; a failed probe opens it again with a fresh
cool-down, ``successes_to_close`` successes close it with an empty window.

Outcomes carry no attempt id, so a probe cannot be told from a late attempt
that started before the breaker opened. Outcomes while open are ignored, and
so are outcomes while half-open with no probe in flight; any other outcome in
half-open is taken to end a probe.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
OPENED = "opened"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    window_ms: int = 60_000
    buckets: int = 10
    # open when failures * 1000 >= failure_rate_permille * total over the window
    failure_rate_permille: int = 500
    # fewer attempts than this in the window say nothing about the rate
    min_volume: int = 20
    cooldown_ms: int = 30_000
    probes: int = 1
    successes_to_close: int = 1

    def __post_init__(self) -> None:
        # bool is an int subclass; True as a bucket count is a bug, not a setting
        if any(type(getattr(self, f.name)) is not int for f in fields(self)):
            raise ValueError("breaker settings must be ints")
        checks = (
            (self.buckets >= 1, "buckets must be >= 1"),
            # equal buckets keep the window's span exact and the rotation integer
            (
                self.buckets >= 1 and self.window_ms >= 1 and self.window_ms % self.buckets == 0,
                "window_ms must be a positive multiple of buckets",
            ),
            (1 <= self.failure_rate_permille <= 1000, "failure_rate_permille must be 1..1000"),
            (self.min_volume >= 1, "min_volume must be >= 1"),
            (self.cooldown_ms >= 0, "cooldown_ms must be >= 0"),
            (self.probes >= 1, "probes must be >= 1"),
            (self.successes_to_close >= 1, "successes_to_close must be >= 1"),
        )
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("; ".join(problems))


class _Breaker:
    __slots__ = (
        "fail_sum",
        "failures",
        "head",
        "in_flight",
        "opened_at",
        "state",
        "successes",
        "total_sum",
        "totals",
    )

    def __init__(self, buckets: int, head: int) -> None:
        self.state = CLOSED
        self.head = head  # absolute number (now // bucket_ms) of the newest bucket
        self.totals = [0] * buckets
        self.failures = [0] * buckets
        self.total_sum = 0
        self.fail_sum = 0
        self.opened_at = 0
        self.in_flight = 0  # half-open probes started and not yet ended
        self.successes = 0  # probe successes in this half-open spell


class CircuitBreakers:
    __slots__ = ("_breakers", "_bucket_ms", "settings")

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self._bucket_ms = settings.window_ms // settings.buckets
        self._breakers: dict[int, _Breaker] = {}

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, key: object) -> bool:
        """Is a breaker stored for ``key``? (None is: the key is closed and healthy.)"""
        return key in self._breakers

    def keys(self) -> list[int]:
        """The stored keys, copied: ``state`` may drop one while a caller walks them."""
        return list(self._breakers)

    def is_open(self, key: int, now: int) -> bool:
        """Open and still cooling down: nothing for ``key`` may start before ``reopens_at``."""
        breaker = self._breakers.get(key)
        return breaker is not None and self._advance(breaker, now) == OPEN

    def reopens_at(self, key: int) -> int:
        """When the latest cool-down ends (or ended); 0 for a key that never opened."""
        breaker = self._breakers.get(key)
        if breaker is None or breaker.state == CLOSED:
            return 0
        return breaker.opened_at + self.settings.cooldown_ms

    def allow(self, key: int, now: int) -> bool:
        """May one more attempt for ``key`` start now? True in half-open takes a probe."""
        return self.allow_many(key, 1, now) == 1

    def allow_many(self, key: int, n: int, now: int) -> int:
        """How many of ``n`` attempts may start now; those granted in half-open are probes."""
        n = max(n, 0)
        breaker = self._breakers.get(key)
        if breaker is None:
            return n
        state = self._advance(breaker, now)
        if state == CLOSED:
            return n
        if state == OPEN:
            return 0
        granted = min(n, self.settings.probes - breaker.in_flight)
        breaker.in_flight += granted
        return granted

    def record(self, key: int, now: int, success: bool) -> str | None:
        """An attempt's outcome; returns "opened" or "closed" when the breaker flips."""
        breaker = self._breakers.get(key)
        if breaker is None:
            if success:
                # A key's window starts at its first failure: successes before it
                # cannot open a breaker, and leaving them out overstates the rate
                # by at most one failure in min_volume attempts. A healthy key is
                # then one dict lookup per outcome, and never stored.
                return None
            breaker = _Breaker(self.settings.buckets, now // self._bucket_ms)
            self._breakers[key] = breaker
        state = self._advance(breaker, now)
        if state == CLOSED:
            return self._count(breaker, now, success)
        if state == OPEN or breaker.in_flight == 0:
            return None  # started before it opened: says nothing about the recovery
        breaker.in_flight -= 1
        if not success:
            self._open(breaker, now)
            return OPENED
        breaker.successes += 1
        if breaker.successes < self.settings.successes_to_close:
            return None
        # closed with an empty window is exactly a key never seen: store nothing
        del self._breakers[key]
        return CLOSED

    def forget(self, key: int, now: int) -> None:
        """A started attempt ended without an outcome (canceled): free its probe, if any."""
        breaker = self._breakers.get(key)
        if breaker is not None and self._advance(breaker, now) == HALF_OPEN:
            breaker.in_flight = max(breaker.in_flight - 1, 0)

    def state(self, key: int, now: int) -> tuple[str, int, int]:
        """(state, failures in window, attempts in window), for display."""
        breaker = self._breakers.get(key)
        if breaker is None:
            return (CLOSED, 0, 0)
        state = self._advance(breaker, now)
        self._rotate(breaker, now)
        if state == CLOSED and breaker.total_sum == 0:
            del self._breakers[key]
        return (state, breaker.fail_sum, breaker.total_sum)

    def sweep(self, now: int) -> int:
        """Drop closed breakers whose window has emptied; returns how many were dropped."""
        empty = []
        for key, breaker in self._breakers.items():
            if breaker.state == CLOSED:
                self._rotate(breaker, now)
                if breaker.total_sum == 0:
                    empty.append(key)
        for key in empty:
            del self._breakers[key]
        return len(empty)

    def _advance(self, breaker: _Breaker, now: int) -> str:
        # open turns half-open lazily, on the first look after the cool-down
        if breaker.state == OPEN and now >= breaker.opened_at + self.settings.cooldown_ms:
            breaker.state = HALF_OPEN
            breaker.in_flight = 0
            breaker.successes = 0
        return breaker.state

    def _open(self, breaker: _Breaker, now: int) -> None:
        # the window is kept (not counted into) so state() can show why it opened
        breaker.state = OPEN
        breaker.opened_at = now
        breaker.in_flight = 0
        breaker.successes = 0

    def _rotate(self, breaker: _Breaker, now: int) -> None:
        # clear the buckets between the newest one and now's; a gap of a whole
        # window or more clears them all. A clock going back rotates nothing.
        epoch = now // self._bucket_ms
        gap = min(epoch - breaker.head, len(breaker.totals))
        for number in range(breaker.head + 1, breaker.head + 1 + gap):
            i = number % len(breaker.totals)
            breaker.total_sum -= breaker.totals[i]
            breaker.fail_sum -= breaker.failures[i]
            breaker.totals[i] = breaker.failures[i] = 0
        breaker.head = max(epoch, breaker.head)

    def _count(self, breaker: _Breaker, now: int, success: bool) -> str | None:
        self._rotate(breaker, now)
        i = breaker.head % len(breaker.totals)  # an outcome from the past lands in the newest
        breaker.totals[i] += 1
        breaker.total_sum += 1
        if not success:
            breaker.failures[i] += 1
            breaker.fail_sum += 1
        settings = self.settings
        if (
            breaker.total_sum >= settings.min_volume
            and breaker.fail_sum * 1000 >= settings.failure_rate_permille * breaker.total_sum
        ):
            self._open(breaker, now)
            return OPENED
        return None
