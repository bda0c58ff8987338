"""The compiled attempt log against its twin, step by step: the same records give
the same rows, in the same order, asking ``live`` the same questions."""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from broker._native.job_record import Job
from broker.states import LEASED, NAMES, PENDING
from broker.store.rows import HistoryRow
from tests.differential.pair import ID_PATTERNS, both, id_pattern

compiled, twin_mod = both("attempt_log")

N_JOBS = 64  # past the first growths of the compiled kernel's job index
states = st.integers(0, len(NAMES) - 1)
times = st.integers(0, 40)  # narrow, so held and written claims mix
tokens = st.integers(1, 6)  # few, so an ack often finds its claim and sometimes not
texts = st.one_of(st.none(), st.sampled_from(["succeeded", "failed", "timed_out", ""]))
blobs = st.one_of(st.none(), st.binary(max_size=4))
picks = st.lists(st.integers(0, N_JOBS - 1), max_size=40)


def new_job(jid: int) -> Job:
    return Job(jid, 0, 0, 5, 5, 30_000, 0, 0, b"", None, LEASED)


class AttemptLogMachine(RuleBasedStateMachine):
    @initialize(pattern=st.sampled_from(ID_PATTERNS), seed=st.integers(0, 2**32))
    def start(self, pattern: str, seed: int) -> None:
        jids = id_pattern(pattern, N_JOBS, random.Random(seed))
        self.jobs = [new_job(jid) for jid in jids]
        self.native = compiled.AttemptLog(HistoryRow, LEASED, PENDING)
        self.twin = twin_mod.AttemptLog(HistoryRow, LEASED, PENDING)

    def both(self, method: str, *args: Any) -> None:
        outcomes = []
        for log in (self.native, self.twin):
            try:
                outcomes.append(("ok", getattr(log, method)(*args)))
            except ValueError as exc:
                outcomes.append(("ValueError", str(exc)))
        assert outcomes[0] == outcomes[1]

    def pick(self, indexes: list[int]) -> list[Job]:
        return [self.jobs[i] for i in indexes]

    @rule(at=times, worker=st.sampled_from(["w1", "w2", None]), picked=picks, data=st.data())
    def leased(self, at: int, worker: str | None, picked: list[int], data: st.DataObject) -> None:
        n = len(picked)
        toks = data.draw(st.lists(tokens, min_size=n, max_size=n))
        deadlines = data.draw(st.lists(times, min_size=n, max_size=n))
        self.both("leased", at, worker, self.pick(picked), toks, deadlines)

    @rule(at=times, picked=picks, data=st.data())
    def extended(self, at: int, picked: list[int], data: st.DataObject) -> None:
        n = len(picked)
        toks = data.draw(st.lists(tokens, min_size=n, max_size=n))
        deadlines = data.draw(st.lists(times, min_size=n, max_size=n))
        self.both("extended", at, self.pick(picked), toks, deadlines)

    @rule(at=times, picked=picks, data=st.data())
    def finished(self, at: int, picked: list[int], data: st.DataObject) -> None:
        n = len(picked)
        column = lambda values: data.draw(st.lists(values, min_size=n, max_size=n))  # noqa: E731
        self.both(
            "finished", at, self.pick(picked), column(tokens), column(texts), column(states),
            column(times), column(blobs), column(blobs),
        )  # fmt: skip

    @rule(at=times, picked=picks, state=states, reason=st.sampled_from(["due", "canceled", None]))
    def changed(self, at: int, picked: list[int], state: int, reason: str | None) -> None:
        self.both("changed", at, self.pick(picked), state, reason)

    @rule(at=times, picked=st.lists(st.integers(0, N_JOBS - 1), min_size=1, max_size=3),
          short=st.integers(0, 2))  # fmt: skip
    def uneven_columns_are_refused(self, at: int, picked: list[int], short: int) -> None:
        jobs = self.pick(picked)
        full, cut = [1] * len(jobs), [1] * (len(jobs) - 1)
        columns = [full, full, full]
        columns[short] = cut
        self.both("leased", at, "w1", jobs if short else jobs[:-1], *columns[1:])
        self.both("finished", at, jobs, full, ["x"] * len(jobs), full, full, full, cut)

    @rule(index=st.integers(0, N_JOBS - 1), state=states, attempt=st.integers(0, 5),
          last_token=tokens, last_status=texts)  # fmt: skip
    def engine_moves_a_job(
        self, index: int, state: int, attempt: int, last_token: int, last_status: str | None
    ) -> None:
        job = self.jobs[index]
        job.state, job.attempt, job.last_token = state, attempt, last_token
        job.last_status = last_status or ""

    @rule(hold=st.one_of(st.none(), times), new=st.lists(st.integers(0, N_JOBS - 1), max_size=3))
    def cut(self, hold: int | None, new: list[int]) -> None:
        submitted = {self.jobs[i].jid: self.jobs[i] for i in new}
        asked: list[list[tuple[int, int]]] = [[], []]
        results = []
        for log, questions in zip((self.native, self.twin), asked, strict=True):

            def live(jid: int, state: int, questions: list[tuple[int, int]] = questions) -> Any:
                questions.append((jid, state))
                return (jid % 7, jid % 5, f"w{jid % 3}" if jid % 2 else None, jid % 11)

            results.append(log.cut(live, submitted, hold))
        assert results[0] == results[1]
        assert all(type(row) is HistoryRow for row in results[0])
        assert [hash(row) for row in results[0]] == [hash(tuple(row)) for row in results[1]]
        assert asked[0] == asked[1]

    @precondition(lambda self: len(self.twin) > 1)
    @rule(fail_at=st.integers(0, 3))
    def live_failing_midway_changes_nothing(self, fail_at: int) -> None:
        """Rows already made are dropped; the next cut has everything."""
        for job in self.jobs:
            job.state = LEASED  # every job's last row asks ``live``
        fail_at %= len(self.twin)  # a job with rows made before it, mostly
        outcomes = []
        for log in (self.native, self.twin):
            asked = []

            def live(jid: int, state: int, asked: list[int] = asked) -> Any:
                asked.append(jid)
                if len(asked) > fail_at:
                    raise KeyError(jid)
                return (0, 1, None, 2)

            with pytest.raises(KeyError):
                log.cut(live, {})
            outcomes.append((asked, len(log), log.oldest(-1)))
        assert outcomes[0] == outcomes[1]

    @rule(default=times)
    def oldest(self, default: int) -> None:
        self.both("oldest", default)

    @precondition(lambda self: len(self.twin) > 0)
    @rule()
    def cut_everything_empties_it(self) -> None:
        rows = [log.cut(lambda jid, state: (0, 0, None, 0), {}) for log in (self.native, self.twin)]
        assert rows[0] == rows[1] and len(self.native) == len(self.twin) == 0

    @invariant()
    def same_size(self) -> None:
        assert len(self.native) == len(self.twin)


TestAttemptLog = AttemptLogMachine.TestCase


@pytest.mark.parametrize("module", [compiled, twin_mod], ids=["c", "py"])
def test_row_type_must_be_a_tuple_subclass(module: Any) -> None:
    with pytest.raises(TypeError):
        module.AttemptLog(list, LEASED, PENDING)


def test_a_claim_and_its_ack_are_one_row_and_fresh_claims_wait() -> None:
    """The journal's common case, spelled out: claim two jobs at 10, ack one at 12,
    cut at 15 holding claims since 5: one row for the acked job; the other
    waits for the next cut."""
    for module in (compiled, twin_mod):
        log = module.AttemptLog(HistoryRow, LEASED, PENDING)
        a, b = new_job(1), new_job(2)
        log.leased(10, "w", [a, b], [7, 8], [40, 40])
        a.state, a.last_token, a.last_status = 3, 7, "succeeded"
        log.finished(12, [a], [7], ["succeeded"], [3], [0], [None], [b"{}"])
        (row,) = log.cut(lambda jid, state: (0, 9, "w", 40), {}, 5)
        assert row == HistoryRow(1, 10, 3, 0, 0, 0, None, 0, 7, "succeeded", 7, "w", 10, 40, 12,
                                 "succeeded", None, b"{}", None)  # fmt: skip
        assert len(log) == 1 and log.oldest(99) == 10
        (row,) = log.cut(lambda jid, state: (0, 8, "w", 40), {})  # b, still leased
        assert (row.jid, row.state, row.lease_token, row.token, row.finished) == (2, 2, 8, 8, 0)


@pytest.mark.parametrize("module", [compiled, twin_mod], ids=["c", "py"])
def test_a_negative_job_number_is_refused_and_nothing_is_kept(module: Any) -> None:
    log = module.AttemptLog(HistoryRow, LEASED, PENDING)
    worker, reason = "w" * 40, "r" * 40  # not interned: their counts are theirs
    before = sys.getrefcount(worker), sys.getrefcount(reason)
    for _ in range(50):
        with pytest.raises(ValueError):
            log.leased(1, worker, [new_job(-5)], [1], [9])
        with pytest.raises(ValueError):
            log.changed(1, [new_job(-5)], 0, reason)
    assert len(log) == 0 and (sys.getrefcount(worker), sys.getrefcount(reason)) == before


def test_the_compiled_log_holds_and_lets_go_of_what_it_is_given() -> None:
    """Every string, bytes and job is referenced while held and let go when written
    (or when the log goes), replaced values included."""
    worker, status, error, output, reason = ("x" * 40, "s" * 40, b"e" * 40, b"o" * 40,
                                             "r" * 40)  # fmt: skip
    values = (worker, status, error, output, reason)
    jobs = [new_job(i) for i in range(1, 4)]
    counts = [sys.getrefcount(v) for v in (*values, *jobs)]
    log = compiled.AttemptLog(HistoryRow, LEASED, PENDING)
    log.leased(1, worker, jobs, [1, 2, 3], [9, 9, 9])
    for _ in range(3):  # the same attempt finished again: the old values are let go
        log.finished(2, jobs[:2], [1, 2], [status] * 2, [3] * 2, [0] * 2, [error] * 2,
                     [output] * 2)  # fmt: skip
    log.extended(3, jobs[2:], [3], [20])
    log.changed(4, jobs[:1], 1, reason)
    assert sys.getrefcount(worker) > counts[0]
    rows = log.cut(lambda jid, state: (0, 3, None, 20), {}, 0)  # job 3: a fresh claim, held
    assert len(rows) == 3 and len(log) == 1
    del rows
    del log  # still holding job 3's claim
    assert [sys.getrefcount(v) for v in (*values, *jobs)] == counts


def test_an_uninitialised_compiled_log_refuses_calls() -> None:
    log = compiled.AttemptLog.__new__(compiled.AttemptLog)
    with pytest.raises(TypeError):
        log.leased(1, "w", [new_job(1)], [1], [9])
    with pytest.raises(TypeError):
        log.cut(lambda jid, state: (0, 0, None, 0), {})


def test_a_list_shortened_while_a_token_is_read_is_an_error_not_a_crash() -> None:
    log = compiled.AttemptLog(HistoryRow, LEASED, PENDING)
    jobs = [new_job(i) for i in range(1, 5)]
    tokens: list[Any] = []

    class Token:
        def __index__(self) -> int:
            jobs.clear()
            tokens.clear()
            return 1

        __int__ = __index__

    tokens.extend([Token(), 2, 3, 4])
    with pytest.raises((IndexError, TypeError)):
        log.leased(1, "w", jobs, tokens, [9, 9, 9, 9])


def test_live_may_not_call_the_compiled_log_again() -> None:
    log = compiled.AttemptLog(HistoryRow, LEASED, PENDING)
    job = new_job(1)
    log.leased(1, "w", [job], [1], [9])

    def live(jid: int, state: int) -> Any:
        log.leased(2, "w", [new_job(2)], [2], [9])
        return (0, 0, None, 0)

    with pytest.raises(RuntimeError):
        log.cut(live, {})
    assert len(log) == 1  # nothing written, nothing lost: the next cut has it all
    (row,) = log.cut(lambda jid, state: (0, 1, "w", 9), {})
    assert (row.jid, row.token) == (1, 1)


@pytest.mark.parametrize("module", [compiled, twin_mod], ids=["c", "py"])
def test_a_claim_is_held_only_when_leased_after_hold_from(module: Any) -> None:
    log = module.AttemptLog(HistoryRow, LEASED, PENDING)
    log.leased(20, "w", [new_job(1)], [1], [50])
    live = lambda jid, state: (0, 1, "w", 50)  # noqa: E731
    assert log.cut(live, {}, 19) == [] and len(log) == 1  # leased after 19: held
    assert log.cut(live, {1: None}, 19)[0].jid == 1  # submitted in this flush: written
    log.leased(20, "w", [new_job(2)], [2], [50])
    assert log.cut(live, {}, 20)[0].jid == 2  # leased at 20, not after: written
