"""The compiled token buckets against their pure-Python twin, step by step.

Times, counts and pauses reach the ends of int64, where ``elapsed * rate`` and
``now + retry_after`` no longer fit in 64 bits.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.differential.pair import both

compiled, twin_mod = both("token_buckets")

I64 = 2**63 - 1
KEYS = st.integers(min_value=0, max_value=4)
ANY_KEY = st.one_of(KEYS, KEYS, KEYS, st.sampled_from([-1, 2**63, 2**64]))
PROBES = [-1, *range(6), 2**63]
GOOD_RATES = st.sampled_from([0, 1, 3, 999, 1000, 10**6, 10**9, 10**12])
RATES = st.one_of(GOOD_RATES, GOOD_RATES, st.sampled_from([-1, 10**12 + 1]))
GOOD_BURSTS = st.sampled_from([1, 2, 5, 1000, 10**9])
BURSTS = st.one_of(GOOD_BURSTS, GOOD_BURSTS, st.sampled_from([0, -1, 10**9 + 1]))
# n past int64 is fine for the kernel: it saturates where the twin's result is the same
COUNTS = st.one_of(
    st.integers(0, 12),
    st.integers(0, 12),
    st.sampled_from([10**6, 10**9, I64, 2**63, 2**80, -1, -(2**70)]),
)
PAUSES = st.one_of(st.integers(0, 5000), st.sampled_from([2**62, I64, -1, -(2**70)]))
# None: the clock; an int: an offset from it; ("at", t): an absolute time
TIMES = st.one_of(
    st.none(),
    st.none(),
    st.integers(-3000, 3000),
    st.sampled_from([-(2**63), -1, 0, 2**62, I64]).map(lambda t: ("at", t)),
)


def outcome(obj: Any, method: str, *args: Any) -> tuple[str, Any]:
    """What a call did: its value, or that it raised ValueError."""
    try:
        return "ok", getattr(obj, method)(*args)
    except ValueError:
        return "ValueError", None


class BucketsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.native = compiled.TokenBuckets()
        self.twin = twin_mod.TokenBuckets()

    def same(self, method: str, *args: Any) -> Any:
        got = outcome(self.native, method, *args)
        want = outcome(self.twin, method, *args)
        assert got == want, (method, args)
        return want[1]

    def when(self, at: int | tuple[str, int] | None) -> int:
        if at is None:
            return self.now
        if isinstance(at, tuple):
            return at[1]
        return max(-(2**63), min(I64, self.now + at))

    @initialize(
        decrease=st.sampled_from([500, 0, 1, 999, 1000]),
        recover=st.sampled_from([10, 0, 1, 1000]),
        min_rate=st.sampled_from([1, 0, 7, 10**12]),
    )
    def build(self, decrease: int, recover: int, min_rate: int) -> None:
        self.native = compiled.TokenBuckets(decrease, recover, min_rate)
        self.twin = twin_mod.TokenBuckets(decrease, recover, min_rate)

    @rule(dt=st.one_of(st.integers(0, 2000), st.sampled_from([10**6, 10**12, 2**61])))
    def tick(self, dt: int) -> None:
        self.now = min(I64, self.now + dt)

    @rule(key=ANY_KEY, rate=RATES, burst=BURSTS, at=TIMES)
    def configure(self, key: int, rate: int, burst: int, at: Any) -> None:
        self.same("configure", key, rate, burst, self.when(at))

    @rule(key=KEYS, rate=GOOD_RATES, burst=st.sampled_from([1, 2, 5]))
    def configure_now(self, key: int, rate: int, burst: int) -> None:
        self.same("configure", key, rate, burst, self.now)

    @rule(key=ANY_KEY)
    def remove(self, key: int) -> None:
        self.same("remove", key)

    @rule(key=ANY_KEY, n=COUNTS, at=TIMES)
    def take(self, key: int, n: int, at: Any) -> None:
        self.same("take", key, n, self.when(at))

    @rule(
        pairs=st.lists(st.tuples(ANY_KEY, COUNTS), max_size=6),
        extra=st.sampled_from([(), (1,)]),
        at=TIMES,
    )
    def take_many(self, pairs: list[tuple[int, int]], extra: tuple[int, ...], at: Any) -> None:
        keys = [key for key, _ in pairs]
        ns = [n for _, n in pairs] + list(extra)  # extra: columns of unequal length
        self.same("take_many", keys, ns, self.when(at))

    @rule(key=ANY_KEY, n=COUNTS, at=TIMES)
    def refund(self, key: int, n: int, at: Any) -> None:
        self.same("refund", key, n, self.when(at))

    @rule(key=ANY_KEY, at=TIMES, retry_after=PAUSES)
    def penalise(self, key: int, at: Any, retry_after: int) -> None:
        self.same("penalise", key, self.when(at), retry_after)

    @rule(key=ANY_KEY, n=COUNTS, at=TIMES)
    def reward(self, key: int, n: int, at: Any) -> None:
        self.same("reward", key, n, self.when(at))

    @rule(key=ANY_KEY, rate=RATES, until=PAUSES, penalties=st.sampled_from([0, 1, 7, -1, 2**63]))
    def restore(self, key: int, rate: int, until: int, penalties: int) -> None:
        self.same("restore", key, rate, until, penalties)

    @invariant()
    def agree(self) -> None:
        assert len(self.native) == len(self.twin)
        for key in PROBES:
            assert (key in self.native) == (key in self.twin), key
            assert self.native.state(key, self.now) == self.twin.state(key, self.now), key


TestBuckets = BucketsMachine.TestCase


OPS = st.sampled_from(["take", "refund", "reward", "penalise", "state"])


# the ends of int64 on purpose: plain integers() seldom reach them
BIG_TIMES = st.one_of(
    st.integers(-(2**63), I64), st.sampled_from([-(2**63), -1, 0, 2**62, I64 - 1, I64])
)
BIG_COUNTS = st.one_of(st.integers(0, 2**64), st.sampled_from([0, 1, 2**62, I64, 2**63, 2**64]))


@given(
    rate=st.one_of(st.integers(0, 10**12), st.sampled_from([1, 1000, 10**12])),
    burst=st.one_of(st.integers(1, 10**9), st.just(10**9)),
    start=st.one_of(st.integers(0, I64), st.just(0)),
    steps=st.lists(st.tuples(OPS, BIG_TIMES, BIG_COUNTS), max_size=12),
)
def test_large_values_agree(
    rate: int, burst: int, start: int, steps: list[tuple[str, int, int]]
) -> None:
    pair = (compiled.TokenBuckets(), twin_mod.TokenBuckets())
    for tb in pair:
        tb.configure(7, rate, burst, start)
        tb.take(7, burst, start)  # empty: refills start from zero
    for op, now, n in steps:
        if op == "state":
            results = [tb.state(7, now) for tb in pair]
        elif op == "penalise":
            results = [tb.penalise(7, now, min(n, I64)) for tb in pair]
        else:
            results = [getattr(tb, op)(7, n, now) for tb in pair]
        assert results[0] == results[1], (op, now, n)
        assert pair[0].state(7, now) == pair[1].state(7, now)


def test_longest_pause_and_wait_agree() -> None:
    # the widest values there are: a deadline near 2**64, a wait past it
    pair = (compiled.TokenBuckets(), twin_mod.TokenBuckets())
    for tb in pair:
        tb.configure(1, 10**12, 10**9, I64)
        assert tb.penalise(1, I64, I64)
    assert pair[0].state(1, 0) == pair[1].state(1, 0)
    assert pair[0].take(1, 1, -(2**63)) == pair[1].take(1, 1, -(2**63)) == (0, 3 * 2**63 - 2)
    assert pair[0].take_many([1], [1], -5) == pair[1].take_many([1], [1], -5)


def test_init_validation() -> None:
    bad = [
        (-1, 10, 1),
        (1001, 10, 1),
        (500, -1, 1),
        (500, 1001, 1),
        (500, 10, -1),
        (500, 10, 10**12 + 1),
        (2**70, 10, 1),
        (500, 10, -(2**70)),
    ]
    for args in bad:
        for mod in (compiled, twin_mod):
            with pytest.raises(ValueError):
                mod.TokenBuckets(*args)
    for mod in (compiled, twin_mod):
        with pytest.raises(TypeError):
            mod.TokenBuckets(1, 2, 3, 4)
    assert compiled.MICRO == twin_mod.MICRO


def test_configure_validates_beyond_int64() -> None:
    for args in [(2**63, 1, 1, 0), (0, 1, 1, 2**63), (0, 2**70, 1, 0), (0, 1, 2**70, 0)]:
        for mod in (compiled, twin_mod):
            with pytest.raises(ValueError):
                mod.TokenBuckets().configure(*args)


def test_times_and_pauses_past_int64_overflow_in_the_kernel() -> None:
    # documented divergence: the twin would keep a Python int here
    tb = compiled.TokenBuckets()
    tb.configure(1, 1000, 5, 0)
    with pytest.raises(OverflowError):
        tb.take(1, 1, 2**63)
    with pytest.raises(OverflowError):
        tb.penalise(1, 0, 2**63)
    assert tb.state(1, 0) == (1000, 1000, 5, 5, 0, 0)
    # an unknown key never looks at the time, as in the twin
    assert tb.take(2, 3, 2**70) == (3, 0)
    assert tb.take_many([2], [3], 2**70) == [3, 0]


def test_large_random_run_end_to_end() -> None:
    rng = random.Random(11)
    native, twin = compiled.TokenBuckets(400, 25, 3), twin_mod.TokenBuckets(400, 25, 3)
    keys = list(range(200))
    now = 0
    for key in keys[:150]:
        rate, burst = rng.choice([0, 50, 1000, 10**6]), rng.choice([1, 3, 10, 10**6])
        native.configure(key, rate, burst, now)
        twin.configure(key, rate, burst, now)
    for _ in range(10_000):
        now += rng.choice([0, 0, 1, 7, 100, 5000])
        op = rng.random()
        key = rng.choice(keys)
        if op < 0.4:
            batch = rng.sample(keys, 16)
            ns = [rng.randint(0, 4) for _ in batch]
            assert native.take_many(batch, ns, now) == twin.take_many(batch, ns, now)
        elif op < 0.55:
            n = rng.randint(0, 5)
            assert native.take(key, n, now) == twin.take(key, n, now)
        elif op < 0.7:
            n = rng.randint(0, 3)
            native.refund(key, n, now)
            twin.refund(key, n, now)
        elif op < 0.8:
            pause = rng.choice([0, 10, 2000])
            assert native.penalise(key, now, pause) == twin.penalise(key, now, pause)
        elif op < 0.95:
            n = rng.randint(0, 50)
            assert native.reward(key, n, now) == twin.reward(key, n, now)
        else:
            rate, burst = rng.choice([0, 50, 1000]), rng.choice([1, 3, 10])
            native.configure(key, rate, burst, now)
            twin.configure(key, rate, burst, now)
    assert len(native) == len(twin)
    for key in keys:
        assert native.state(key, now) == twin.state(key, now)
