"""The compiled concurrency counters against their pure-Python twin, step by step."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.differential.pair import both

compiled, twin_mod = both("concurrency")

I64 = 2**63 - 1
KEYS = st.integers(min_value=0, max_value=4)
ANY_KEY = st.one_of(KEYS, KEYS, KEYS, st.sampled_from([-1, 2**63, 2**64]))
PROBES = [-1, *range(6), 2**63]
LIMITS = st.one_of(
    st.sampled_from([-1, 0, 1, 2, 3, 5, 2**31 - 1]), st.sampled_from([-2, 2**31, 2**70])
)
# at most 2**55 per call keeps every in-flight total far below int64 max, where
# the kernel would raise OverflowError (tested on its own below)
COUNTS = st.one_of(
    st.integers(0, 4), st.integers(0, 4), st.sampled_from([2**31, 2**55, -1, -(2**70)])
)
HUGE = st.sampled_from([I64, 2**63, 2**80])


def outcome(obj: Any, method: str, *args: Any) -> tuple[str, Any]:
    """What a call did: its value, or that it raised ValueError."""
    try:
        return "ok", getattr(obj, method)(*args)
    except ValueError:
        return "ValueError", None


class CountersMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native = compiled.ConcurrencyCounters()
        self.twin = twin_mod.ConcurrencyCounters()

    def same(self, method: str, *args: Any) -> Any:
        got = outcome(self.native, method, *args)
        want = outcome(self.twin, method, *args)
        assert got == want, (method, args)
        return want[1]

    @rule(key=ANY_KEY, limit=LIMITS)
    def set_limit(self, key: int, limit: int) -> None:
        self.same("set_limit", key, limit)

    @rule(key=ANY_KEY, n=COUNTS)
    def acquire(self, key: int, n: int) -> None:
        self.same("acquire", key, n)

    @rule(pairs=st.lists(st.tuples(ANY_KEY, COUNTS), max_size=6), extra=st.booleans())
    def acquire_many(self, pairs: list[tuple[int, int]], extra: bool) -> None:
        keys = [key for key, _ in pairs] + [0] * extra  # extra: columns of unequal length
        self.same("acquire_many", keys, [n for _, n in pairs])

    @rule(data=st.data(), n=HUGE)
    def acquire_huge_under_a_limit(self, data: st.DataObject, n: int) -> None:
        # n past int64 is exact for a key with a limit (without one it would overflow)
        limited = [key for key in range(5) if self.twin.limit(key) != twin_mod.UNLIMITED]
        if limited:
            key = data.draw(st.sampled_from(limited))
            self.same("acquire", key, n)
            self.same("acquire_many", [key, key], [n, 1])

    @rule(key=ANY_KEY, n=COUNTS)
    def release(self, key: int, n: int) -> None:
        self.same("release", key, n)

    @rule(pairs=st.lists(st.tuples(ANY_KEY, COUNTS), max_size=6), extra=st.booleans())
    def release_many(self, pairs: list[tuple[int, int]], extra: bool) -> None:
        keys = [key for key, _ in pairs]
        self.same("release_many", keys, [n for _, n in pairs] + [1] * extra)

    @rule(data=st.data())
    def release_held(self, data: st.DataObject) -> None:
        # repeated keys whose total is at most (or just past) what they hold
        held = [key for key in range(5) if self.twin.inflight(key)]
        keys = data.draw(st.lists(st.sampled_from(held), max_size=6)) if held else []
        ns = [data.draw(st.integers(0, self.twin.inflight(key))) for key in keys]
        overdraw = data.draw(st.booleans())
        if keys and overdraw:
            ns[-1] = data.draw(st.sampled_from([ns[-1] + 1, 2**64, -1]))
        self.same("release_many", keys, ns)

    @invariant()
    def agree(self) -> None:
        for key in PROBES:
            for method in ("limit", "inflight", "available"):
                assert getattr(self.native, method)(key) == getattr(self.twin, method)(key)


TestCounters = CountersMachine.TestCase


def test_constants_and_init() -> None:
    assert compiled.UNLIMITED == twin_mod.UNLIMITED
    for mod in (compiled, twin_mod):
        with pytest.raises(TypeError):
            mod.ConcurrencyCounters(1)


def test_lookups_of_other_objects_behave_like_a_dict() -> None:
    pair = (compiled.ConcurrencyCounters(), twin_mod.ConcurrencyCounters())
    for counters in pair:
        counters.set_limit(1, 5)
        counters.acquire(1, 2)
        counters.release_many([1.0, "x", None], [1, 0, 0])
    for probe in (1, 1.0, True, 1.5, "1", None, 2**80):
        for method in ("limit", "inflight", "available"):
            assert getattr(pair[0], method)(probe) == getattr(pair[1], method)(probe)
    for counters in pair:
        with pytest.raises(TypeError):  # unhashable, as in a dict: nothing released
            counters.release_many([1, []], [1, 0])
        assert counters.inflight(1) == 1


def test_release_refusal_names_the_same_key() -> None:
    batches = [
        ([1, 2, 1], [2, 1, 9]),
        ([3, 2], [1, 9]),
        ([2, 1.0, "x"], [0, 7, 1]),
        ([1, 1], [2**63, 1]),
        ([1], [2**80]),
    ]
    pair = (compiled.ConcurrencyCounters(), twin_mod.ConcurrencyCounters())
    for counters in pair:
        counters.acquire_many([1, 2], [3, 4])
    for keys, ns in batches:
        messages = []
        for counters in pair:
            with pytest.raises(ValueError) as caught:
                counters.release_many(keys, ns)
            messages.append(str(caught.value))
        assert messages[0] == messages[1]
    assert [pair[0].inflight(k) for k in (1, 2)] == [pair[1].inflight(k) for k in (1, 2)]


def test_counts_past_int64_overflow_without_changing_anything() -> None:
    # documented divergence: the twin would hold a Python int past int64 max
    counters = compiled.ConcurrencyCounters()
    counters.set_limit(2, 3)
    assert counters.acquire(1, I64) == I64
    with pytest.raises(OverflowError):
        counters.acquire(1, 1)
    with pytest.raises(OverflowError):
        counters.acquire_many([2, 3, 1], [2, 5, 1])
    with pytest.raises(OverflowError):
        counters.acquire(4, 2**63)
    assert [counters.inflight(k) for k in (1, 2, 3, 4)] == [I64, 0, 0, 0]
    assert counters.acquire_many([2, 2], [2**80, 1]) == [3, 0]


def test_large_random_run_end_to_end() -> None:
    rng = random.Random(3)
    native, twin = compiled.ConcurrencyCounters(), twin_mod.ConcurrencyCounters()
    keys = list(range(300))
    for key in keys[:200]:
        limit = rng.choice([0, 1, 4, 50])
        native.set_limit(key, limit)
        twin.set_limit(key, limit)
    for _ in range(10_000):
        op = rng.random()
        batch = rng.sample(keys, 32)
        if op < 0.45:
            ns = [rng.randint(0, 3) for _ in batch]
            assert native.acquire_many(batch, ns) == twin.acquire_many(batch, ns)
        elif op < 0.9:
            ns = [rng.randint(0, twin.inflight(key)) for key in batch]
            if rng.random() < 0.1:
                ns[0] += 1
            assert outcome(native, "release_many", batch, ns) == outcome(
                twin, "release_many", batch, ns
            )
        else:
            key, limit = rng.choice(keys), rng.choice([-1, 0, 2, 10])
            native.set_limit(key, limit)
            twin.set_limit(key, limit)
    for key in keys:
        assert native.inflight(key) == twin.inflight(key)
        assert native.limit(key) == twin.limit(key)
        assert native.available(key) == twin.available(key)
