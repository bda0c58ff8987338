"""Circuit breakers on a manual clock: every transition, then random sequences (hypothesis).

The properties run random operations on a few keys against a model that
knows only the settings, the clock and what the breaker answered. It counts
the window by brute force over the outcomes logged while closed, so the ring
of buckets is checked against a plain list. After every step: an open breaker
granted nothing before its cool-down ended, half-open probes in flight never
exceed ``probes``, and only keys with data are stored. Separately: the same
operations on two fresh instances give the same answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.engine.breakers import BreakerSettings, CircuitBreakers

K = 7


def breakers(**kw: int) -> CircuitBreakers:
    base = {"window_ms": 1_000, "buckets": 10, "min_volume": 4, "cooldown_ms": 500}
    return CircuitBreakers(BreakerSettings(**{**base, **kw}))


def trip(cb: CircuitBreakers, now: int = 0, key: int = K) -> None:
    """Open ``key`` with failures only (enough for any min_volume used here)."""
    for _ in range(cb.settings.min_volume - 1):
        assert cb.record(key, now, False) is None
    assert cb.record(key, now, False) == "opened"


# -- closed -> open -------------------------------------------------------------
def test_opens_at_the_threshold_once_min_volume_is_reached() -> None:
    cb = breakers(failure_rate_permille=500, min_volume=4)
    assert cb.record(K, 0, False) is None
    assert cb.record(K, 1, True) is None
    assert cb.record(K, 2, True) is None
    assert cb.state(K, 2) == ("closed", 1, 3)
    assert cb.record(K, 3, False) == "opened"  # 2/4 = 500 permille, volume 4
    assert cb.state(K, 3) == ("open", 2, 4)
    assert cb.allow(K, 3) is False


def test_the_window_starts_at_a_keys_first_failure() -> None:
    cb = breakers(failure_rate_permille=500, min_volume=4)
    for t in range(10):
        assert cb.record(K, t, True) is None  # a healthy key is not stored at all
    assert len(cb) == 0 and cb.state(K, 10) == ("closed", 0, 0)
    assert cb.record(K, 11, False) is None
    assert cb.state(K, 11) == ("closed", 1, 1)


def test_stays_closed_under_min_volume_or_below_the_rate() -> None:
    cb = breakers(failure_rate_permille=500, min_volume=4)
    for t in range(3):
        assert cb.record(K, t, False) is None  # 100% failures, but only 3 attempts
    assert cb.state(K, 3) == ("closed", 3, 3) and cb.allow(K, 3)
    cb = breakers(failure_rate_permille=600, min_volume=4)
    for success in (False, True, True, False, True, False):
        assert cb.record(K, 0, success) is None  # 3/6 = 500 < 600
    assert cb.state(K, 0) == ("closed", 3, 6)


def test_keys_are_independent() -> None:
    cb = breakers()
    trip(cb, key=1)
    assert cb.allow(1, 0) is False and cb.allow(2, 0) is True
    assert cb.state(2, 0) == ("closed", 0, 0)


# -- open -> half-open -> closed / open ----------------------------------------
def test_open_refuses_until_the_cool_down_ends() -> None:
    cb = breakers(cooldown_ms=500)
    trip(cb, now=100)
    assert cb.allow(K, 100) is False
    assert cb.allow(K, 599) is False and cb.allow_many(K, 5, 599) == 0
    assert cb.state(K, 599)[0] == "open"
    assert cb.state(K, 600)[0] == "half_open"
    assert cb.allow(K, 600) is True


def test_half_open_lets_exactly_probes_through() -> None:
    cb = breakers(probes=3)
    trip(cb)
    assert cb.allow_many(K, 2, 500) == 2
    assert cb.allow_many(K, 5, 500) == 1  # one slot left
    assert cb.allow(K, 500) is False and cb.allow_many(K, 4, 501) == 0
    assert cb.allow_many(K, 0, 501) == 0 and cb.allow_many(K, -3, 501) == 0


def test_probe_successes_close_and_clear_the_window() -> None:
    cb = breakers(probes=2, successes_to_close=2)
    trip(cb)
    assert cb.allow_many(K, 2, 500) == 2
    assert cb.record(K, 510, True) is None  # one success, one more needed
    assert cb.state(K, 510)[0] == "half_open"
    assert cb.allow(K, 510) is True  # the success freed its slot
    assert cb.record(K, 520, True) == "closed"
    assert cb.state(K, 520) == ("closed", 0, 0) and len(cb) == 0
    assert cb.allow_many(K, 9, 520) == 9
    # the probe still out reports a success: a key without failures stores nothing
    assert cb.record(K, 530, True) is None and cb.state(K, 530) == ("closed", 0, 0)
    assert len(cb) == 0


def test_probe_failure_reopens_with_a_fresh_cool_down() -> None:
    cb = breakers(cooldown_ms=500)
    trip(cb)
    assert cb.allow(K, 700) is True
    assert cb.record(K, 800, False) == "opened"
    assert cb.allow(K, 1_299) is False and cb.state(K, 1_299)[0] == "open"
    assert cb.allow(K, 1_300) is True


# -- the sliding window ------------------------------------------------------------
def test_old_buckets_roll_out_of_the_window() -> None:
    cb = breakers(window_ms=1_000, buckets=10, min_volume=4)
    for _ in range(3):
        cb.record(K, 0, False)  # bucket 0
    assert cb.state(K, 999) == ("closed", 3, 3)  # buckets 0..9 are the window
    assert cb.state(K, 1_000) == ("closed", 0, 0)  # bucket 0 rolled out
    assert len(cb) == 0  # and the empty closed breaker was dropped
    for _ in range(3):
        cb.record(K, 0, False)
    # a long-ago burst plus one new failure is not four in the window
    assert cb.record(K, 5_000, False) is None
    assert cb.state(K, 5_000) == ("closed", 1, 1)


def test_rotation_clears_only_the_skipped_buckets() -> None:
    cb = breakers(window_ms=1_000, buckets=10, min_volume=100)
    cb.record(K, 50, False)  # bucket 0
    cb.record(K, 350, True)  # bucket 3
    cb.record(K, 950, False)  # bucket 9
    assert cb.state(K, 1_050) == ("closed", 1, 2)  # bucket 0 out
    assert cb.state(K, 1_399) == ("closed", 1, 1)  # bucket 3 out
    assert cb.state(K, 1_999) == ("closed", 0, 0)


def test_a_clock_going_back_counts_into_the_newest_bucket() -> None:
    cb = breakers(window_ms=1_000, buckets=10, min_volume=100)
    cb.record(K, 900, False)
    cb.record(K, 100, True)  # late report: not lost, and nothing rotates backwards
    assert cb.state(K, 900) == ("closed", 1, 2)
    assert cb.state(K, 1_899) == ("closed", 1, 2)
    assert cb.state(K, 1_900) == ("closed", 0, 0)


# -- outcomes that are not probes ---------------------------------------------------
def test_outcomes_while_open_are_ignored() -> None:
    cb = breakers(cooldown_ms=500)
    trip(cb)
    before = cb.state(K, 10)
    assert cb.record(K, 10, True) is None and cb.record(K, 20, False) is None
    assert cb.state(K, 20) == before
    cb.forget(K, 30)
    assert cb.allow(K, 499) is False and cb.allow(K, 500) is True


def test_half_open_without_a_probe_out_ignores_outcomes() -> None:
    cb = breakers()
    trip(cb)
    assert cb.record(K, 600, True) is None  # a late attempt, not a probe
    assert cb.record(K, 600, False) is None
    assert cb.state(K, 600)[0] == "half_open"


def test_forget_frees_a_probe_and_records_nothing() -> None:
    cb = breakers(probes=1)
    trip(cb)
    assert cb.allow(K, 500) is True and cb.allow(K, 500) is False
    cb.forget(K, 510)
    assert cb.state(K, 510)[0] == "half_open"
    assert cb.allow(K, 510) is True
    cb.forget(K, 520)
    cb.forget(K, 520)  # more forgets than probes frees nothing extra
    assert cb.allow_many(K, 3, 520) == 1
    cb.forget(99, 520)  # unknown key: nothing stored
    assert len(cb) == 1


def test_is_open_reopens_at_and_keys_for_the_engine() -> None:
    cb = breakers(cooldown_ms=500)
    assert cb.is_open(K, 0) is False and cb.reopens_at(K) == 0
    cb.record(1, 0, False)
    trip(cb, now=100)
    assert cb.is_open(K, 599) is True and cb.reopens_at(K) == 600
    assert cb.is_open(K, 600) is False  # half-open: allow() hands out the probe
    assert cb.allow(K, 600) is True and cb.record(K, 700, False) == "opened"
    assert cb.is_open(K, 700) is True and cb.reopens_at(K) == 1_200
    # a copy: state() may drop a key while the caller walks them
    walked = cb.keys()
    assert [(k, cb.state(k, 5_000)[0]) for k in walked] == [(1, "closed"), (K, "half_open")]
    assert cb.keys() == [K]


# -- memory ---------------------------------------------------------------------------
def test_keys_without_data_cost_nothing() -> None:
    cb = breakers()
    assert cb.allow(1, 0) and cb.allow_many(2, 5, 0) == 5 and cb.state(3, 0) == ("closed", 0, 0)
    assert len(cb) == 0
    cb.record(1, 0, False)
    cb.record(2, 500, False)
    trip(cb, now=0, key=3)
    assert len(cb) == 3
    assert cb.sweep(999) == 0
    assert cb.sweep(1_000) == 1  # key 1's bucket rolled out; key 3 is open
    assert cb.sweep(1_500) == 1 and len(cb) == 1


# -- settings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"buckets": 0},
        {"window_ms": 0},
        {"window_ms": 1_001, "buckets": 10},
        {"window_ms": 5, "buckets": 10},
        {"failure_rate_permille": 0},
        {"failure_rate_permille": 1_001},
        {"min_volume": 0},
        {"cooldown_ms": -1},
        {"probes": 0},
        {"successes_to_close": 0},
        {"probes": True},
        {"window_ms": 1.5},
    ],
)
def test_settings_refuse_nonsense(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BreakerSettings(**kw)


def test_settings_defaults() -> None:
    s = BreakerSettings()
    assert (s.window_ms, s.buckets, s.failure_rate_permille, s.min_volume) == (60_000, 10, 500, 20)
    assert (s.cooldown_ms, s.probes, s.successes_to_close) == (30_000, 1, 1)
    BreakerSettings(window_ms=1, buckets=1, failure_rate_permille=1000, cooldown_ms=0)


# -- properties -------------------------------------------------------------------------
KEYS = st.sampled_from([1, 2])


def operation(success: st.SearchStrategy[bool]) -> st.SearchStrategy[tuple[Any, ...]]:
    # "attempt" is allow and, if granted, the outcome at once: the engine's usual
    # path, which takes breakers round the whole cycle; the rest interleave freely
    return st.one_of(
        st.tuples(st.just("attempt"), KEYS, success),
        st.tuples(st.just("attempt"), KEYS, success),
        st.tuples(st.just("allow"), KEYS),
        st.tuples(st.just("many"), KEYS, st.integers(-1, 4)),
        st.tuples(st.just("record"), KEYS, success),
        st.tuples(st.just("forget"), KEYS),
        st.tuples(st.just("state"), KEYS),
        st.tuples(st.just("is_open"), KEYS),
        st.tuples(st.just("sweep")),
        st.tuples(st.just("advance"), st.integers(0, 10)),
        st.tuples(st.just("advance"), st.integers(0, 40)),
    )


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Spells of failing, mixed and healthy outcomes, so breakers open, probe and close."""
    ops: list[tuple[Any, ...]] = []
    for health in draw(
        st.lists(st.sampled_from([False, None, True, True]), min_size=1, max_size=4)
    ):
        success = st.booleans() if health is None else st.just(health)
        ops += draw(st.lists(operation(success), min_size=8, max_size=25))
    return ops


@st.composite
def breaker_settings(draw: st.DrawFn) -> BreakerSettings:
    buckets = draw(st.integers(1, 4))
    return BreakerSettings(
        window_ms=buckets * draw(st.integers(1, 20)),
        buckets=buckets,
        failure_rate_permille=draw(st.sampled_from([1, 500, 1000]) | st.integers(1, 1000)),
        min_volume=draw(st.integers(1, 4)),
        cooldown_ms=draw(st.sampled_from([0, 5, 20]) | st.integers(0, 30)),
        probes=draw(st.integers(1, 3)),
        successes_to_close=draw(st.sampled_from([1, 1, 2, 3])),
    )


def apply(cb: CircuitBreakers, op: tuple[Any, ...], now: int) -> object:
    kind, args = op[0], op[1:]
    if kind == "allow":
        return cb.allow(args[0], now)
    if kind == "many":
        return cb.allow_many(args[0], args[1], now)
    if kind == "record":
        return cb.record(args[0], now, args[1])
    if kind == "forget":
        return cb.forget(args[0], now)
    if kind == "state":
        return cb.state(args[0], now)
    if kind == "is_open":
        return cb.is_open(args[0], now)
    return cb.sweep(now)


class Model:
    """The expected answers, from the settings, the clock and the breaker's own grants."""

    def __init__(self, settings: BreakerSettings) -> None:
        self.s = settings
        self.bucket_ms = settings.window_ms // settings.buckets
        self.opened_at: dict[int, int] = {}  # keys open or half-open
        self.flight: dict[int, int] = {}  # half-open probes granted and not ended
        self.successes: dict[int, int] = {}
        self.log: dict[int, list[tuple[int, bool]]] = {}  # (bucket, success) while closed
        self.stored: set[int] = set()

    def phase(self, key: int, now: int) -> str:
        if key not in self.opened_at:
            return "closed"
        return "open" if now < self.opened_at[key] + self.s.cooldown_ms else "half_open"

    def window(self, key: int, now: int) -> tuple[int, int]:
        oldest = now // self.bucket_ms - self.s.buckets + 1
        inside = [ok for bucket, ok in self.log.get(key, []) if bucket >= oldest]
        return inside.count(False), len(inside)

    def open(self, key: int, now: int) -> str:
        self.opened_at[key] = now
        self.flight[key] = self.successes[key] = 0
        return "opened"

    def granted(self, key: int, now: int, asked: int, got: int) -> None:
        phase = self.phase(key, now)
        expected = {"closed": max(asked, 0), "open": 0}.get(phase)
        if expected is None:  # half-open
            expected = min(max(asked, 0), self.s.probes - self.flight[key])
            self.flight[key] += got
        assert got == expected

    def record(self, key: int, now: int, success: bool) -> str | None:
        phase = self.phase(key, now)
        if phase == "closed" and success and key not in self.stored:
            return None  # a key's window starts at its first failure
        self.stored.add(key)
        if phase == "closed":
            self.log.setdefault(key, []).append((now // self.bucket_ms, success))
            failures, total = self.window(key, now)
            if (
                total >= self.s.min_volume
                and failures * 1000 >= self.s.failure_rate_permille * total
            ):
                return self.open(key, now)
            return None
        if phase == "open" or self.flight[key] == 0:
            return None
        self.flight[key] -= 1
        if not success:
            return self.open(key, now)
        self.successes[key] += 1
        if self.successes[key] < self.s.successes_to_close:
            return None
        del self.opened_at[key]
        self.log[key] = []
        self.stored.discard(key)
        return "closed"

    def forget(self, key: int, now: int) -> None:
        if self.phase(key, now) == "half_open":
            self.flight[key] = max(self.flight[key] - 1, 0)

    def drop_if_empty(self, key: int, now: int) -> bool:
        if (
            key in self.stored
            and self.phase(key, now) == "closed"
            and self.window(key, now)[1] == 0
        ):
            self.stored.discard(key)
            return True
        return False

    def state(self, key: int, now: int) -> tuple[str, int, int]:
        self.drop_if_empty(key, now)
        return (self.phase(key, now), *self.window(key, now))

    def sweep(self, now: int) -> int:
        return sum(self.drop_if_empty(key, now) for key in sorted(self.stored))

    def step(self, op: tuple[Any, ...], now: int, answer: object) -> None:
        kind, key = op[0], (op[1] if len(op) > 1 else 0)
        if kind in ("allow", "many"):
            assert isinstance(answer, int)  # bool for allow
            self.granted(key, now, 1 if kind == "allow" else op[2], int(answer))
        elif kind == "record":
            assert answer == self.record(key, now, op[2])
        elif kind == "forget":
            self.forget(key, now)
        elif kind == "state":
            assert answer == self.state(key, now)
        elif kind == "is_open":
            assert answer == (self.phase(key, now) == "open")
        else:
            assert answer == self.sweep(now)


def check(cb: CircuitBreakers, model: Model | None, op: tuple[Any, ...], now: int) -> object:
    """Apply ``op``; with a model, check the answer and the invariants after it."""
    key = op[1] if len(op) > 1 else 0
    phase = model.phase(key, now) if model else ""
    answer = apply(cb, op, now)
    if model is not None:
        model.step(op, now, answer)
        if phase == "open" and op[0] in ("allow", "many"):
            assert answer in (False, 0)  # (2) nothing starts before the cool-down ends
        assert all(n <= cb.settings.probes for n in model.flight.values())  # (1)
        assert len(cb) == len(model.stored) and set(cb.keys()) == model.stored
    return answer


def run(settings: BreakerSettings, ops: list[tuple[Any, ...]], model: Model | None) -> list[object]:
    cb, now, answers = CircuitBreakers(settings), 0, []
    for op in ops:
        if op[0] == "advance":
            now += op[1]
        elif op[0] != "attempt":
            answers.append(check(cb, model, op, now))
        else:
            granted = check(cb, model, ("allow", op[1]), now)
            answers.append(granted)
            if granted:
                answers.append(check(cb, model, ("record", op[1], op[2]), now))
    return answers


@given(breaker_settings(), operations())
def test_probe_limit_cool_down_and_window_hold_on_random_operations(
    settings: BreakerSettings, ops: list[tuple[Any, ...]]
) -> None:
    run(settings, ops, Model(settings))


@given(breaker_settings(), operations())
def test_same_operations_give_the_same_answers(
    settings: BreakerSettings, ops: list[tuple[Any, ...]]
) -> None:
    assert run(settings, ops, None) == run(settings, ops, None)
