"""The compiled COPY codec writes the very bytes its twin writes, and refuses what
its twin refuses, with the same error type."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from broker.states import TERMINAL
from broker.store.rows import HistoryRow
from tests.differential.pair import both

compiled, twin_module = both("copy_codec")
NATIVE = compiled.CopyCodec()
TWIN = twin_module.CopyCodec()

int8 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 0, 1, -1]))
text = st.one_of(st.none(), st.text(max_size=10))
blob = st.one_of(st.none(), st.binary(max_size=10))
rows = st.builds(
    HistoryRow,
    int8, int8, st.integers(-(2**15), 2**15 - 1), st.integers(-(2**31), 2**31 - 1),
    int8, int8, text, int8, int8, text, int8, text, int8, int8, int8, text, blob, blob, text,
)  # fmt: skip
# a field out of its column's range or of the wrong type
bad_values = st.sampled_from(
    [2**63, -(2**63) - 1, 2**15, 2**31, "text", 1.5, b"x", bytearray(b"x")]
)


def outcome(codec: Any, batch: list[Any], floor: int) -> tuple[str, Any]:
    try:
        return ("ok", codec.history(batch, floor, TERMINAL))
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError) as exc:
        return (type(exc).__name__, None)


floors = st.one_of(
    st.integers(-10, 2**63 - 1), st.sampled_from([2**63, 2**70, -(2**63) - 1, -(2**70)])
)
# text and bytes long enough that a batch outgrows the buffer the codec starts with
long_rows = st.builds(
    HistoryRow,
    int8, int8, st.just(3), st.just(1), int8, int8, st.text(min_size=200, max_size=300), int8,
    int8, text, int8, text, int8, int8, int8, text, st.binary(min_size=0, max_size=100_000),
    blob, text,
)  # fmt: skip


@given(st.lists(rows, max_size=8), floors)
@example([], 0)
def test_rows_are_the_same_bytes(batch: list[HistoryRow], floor: int) -> None:
    assert outcome(NATIVE, batch, floor) == outcome(TWIN, batch, floor)


@given(st.lists(st.one_of(rows, long_rows), min_size=1, max_size=12), floors)
def test_long_rows_are_the_same_bytes(batch: list[HistoryRow], floor: int) -> None:
    assert outcome(NATIVE, batch, floor) == outcome(TWIN, batch, floor)


@given(st.lists(rows, min_size=1, max_size=4), st.integers(0, 18), bad_values, st.data())
def test_bad_fields_are_refused_alike(
    batch: list[HistoryRow], field: int, value: Any, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(batch) - 1))
    batch[at] = batch[at]._replace(**{HistoryRow._fields[field]: value})
    assert outcome(NATIVE, batch, 0) == outcome(TWIN, batch, 0)


def test_rows_of_other_lengths_and_lone_surrogates_are_refused_alike() -> None:
    good = HistoryRow(1, 2, 3, 4, 0, 0, None, 0, 0, None, 0, None, 0, 0, 0, None, None, None, None)
    for batch in ([tuple(good)[:18]], [(*good, None)], [good._replace(reason="\ud800")]):
        result = outcome(NATIVE, batch, 0)
        assert result == outcome(TWIN, batch, 0)
        assert result[0] != "ok"


def test_plain_tuples_and_lists_are_rows_too() -> None:
    row = HistoryRow(7, 2, 1, 1, 5, 9, "w", 3, 0, None, 9, "w", 1, 3, 0, None, b"e", None, "r")
    expected = TWIN.history([row], 100, TERMINAL)
    assert NATIVE.history([tuple(row)], 100, TERMINAL) == expected
    assert NATIVE.history([list(row)], 100, TERMINAL) == expected
    assert expected[1] == [7]  # below the floor and not terminal: revived


def test_only_unfinished_jobs_below_the_floor_are_revived() -> None:
    """A row below the live floor that leaves its job unfinished brings the job back
    (a straggler); a finished one, or any job at or above the floor, does not."""
    from broker import states

    def row(jid: int, state: int) -> HistoryRow:
        return HistoryRow(jid, 1, state, 1, 0, 0, None, 0, 0, None, 0, None, 0, 0, 0, None,
                          None, None, None)  # fmt: skip

    batch = [
        row(1, states.LEASED),  # below, unfinished: revived
        row(2, states.SUCCEEDED),  # below, finished
        row(3, states.DEAD),
        row(4, states.READY),  # below, unfinished: revived
        row(5, states.PENDING),  # at the floor
        row(9, states.LEASED),  # above it
        row(4, states.CANCELED),  # job 4 again, now finished: this row revives nothing
    ]
    for codec in (NATIVE, TWIN):
        _, revived = codec.history(batch, 5, TERMINAL)
        assert revived == [1, 4]
