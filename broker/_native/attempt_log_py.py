"""What happened to each job since the last flush, coalesced per attempt (pure-Python
twin and specification of ``attempt_log.pyx``).

The journal (``broker/service/journal.py``) feeds it the engine's records about
jobs and cuts it at every flush. Each touched job keeps, in order, its entries
of this flush: attempts (token != 0: opened, extended, finished) and
transitions outside an attempt (token 0, with a reason). Records about one
attempt merge into one entry, so a claim and its ack inside one flush are one
history row. ``cut`` turns the entries into rows: every entry but a job's last
carries the state right after its own event; the last carries the job's state
*at the cut*, read from the job (and, for a leased or pending job, from
``live``). Jobs come out in the order they were first touched.

Claims younger than ``hold_from`` can be held back for the next cut (a claim's
row is write-behind anyway; its ack will likely come first and share the row).

Jobs are the engine's ``Job`` records: ``jid``, ``attempt``, ``state``,
``last_token``, ``last_status`` are read; times and tokens are the engine's
ints.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any

#: ``live(jid, state)`` of a leased or pending job: (due, lease token, lease worker, lease deadline)
Live = Callable[[int, int], tuple[int, int, "str | None", int]]


class _Entry:
    """One attempt (token != 0) or one transition of a job in this flush."""

    __slots__ = (
        "at",
        "attempt",
        "deadline",
        "due",
        "error",
        "finished",
        "leased_at",
        "output",
        "reason",
        "state",
        "status",
        "token",
        "worker",
    )

    def __init__(
        self,
        at: int,
        state: int,
        attempt: int,
        token: int = 0,
        reason: str | None = None,
        worker: str | None = None,
        deadline: int = 0,
    ) -> None:
        self.at = at
        self.state = state
        self.attempt = attempt
        self.token = token
        self.reason = reason
        self.worker = worker
        self.leased_at = at if worker is not None else 0
        self.deadline = deadline
        self.finished = 0
        self.status: str | None = None
        self.due = 0
        self.error: bytes | None = None
        self.output: bytes | None = None


class AttemptLog:
    """``row_type`` builds a row from its 19 fields in ``HistoryRow`` order (a tuple
    subclass); ``leased`` and ``pending`` are those two states' numbers."""

    def __init__(self, row_type: type, leased: int, pending: int) -> None:
        if not isinstance(row_type, type) or not issubclass(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass")
        self._row_type = row_type
        self._leased = leased
        self._pending = pending
        self._jobs: dict[int, Any] = {}  # jid -> job, in the order first touched
        self._entries: dict[int, list[_Entry]] = {}

    def __len__(self) -> int:
        """Jobs with entries (held claims included)."""
        return len(self._entries)

    def oldest(self, default: int) -> int:
        """The time of the oldest first entry of any job, ``default`` when empty."""
        return min((entries[0].at for entries in self._entries.values()), default=default)

    # -- records -----------------------------------------------------------------
    def leased(
        self, at: int, worker: str | None, jobs: list[Any], tokens: list[int],
        deadlines: list[int],
    ) -> None:  # fmt: skip
        """Attempts opened: ``jobs[i]`` leased to ``worker`` with ``tokens[i]``."""
        _same_lengths(jobs, tokens, deadlines)
        lists = self._entries
        for job, token, deadline in zip(jobs, tokens, deadlines, strict=True):
            entry = _Entry(at, self._leased, job.attempt, token, None, worker, deadline)
            entries = lists.get(job.jid)
            if entries is None:
                _check_number(job.jid)
                lists[job.jid] = [entry]
                self._jobs[job.jid] = job
            else:
                entries.append(entry)

    def extended(self, at: int, jobs: list[Any], tokens: list[int], deadlines: list[int]) -> None:
        """Leases moved to ``deadlines[i]`` (heartbeats)."""
        _same_lengths(jobs, tokens, deadlines)
        for job, token, deadline in zip(jobs, tokens, deadlines, strict=True):
            self._attempt(job, token, at).deadline = deadline

    def finished(
        self, at: int, jobs: list[Any], tokens: list[int], statuses: list[str],
        states: list[int], due: list[int], errors: list[bytes | None],
        outputs: list[bytes | None],
    ) -> None:  # fmt: skip
        """Attempts ended with ``statuses[i]``, leaving the job in ``states[i]``."""
        _same_lengths(jobs, tokens, statuses, states, due, errors, outputs)
        items = zip(jobs, tokens, statuses, states, due, errors, outputs, strict=True)
        for job, token, status, state, when, error, output in items:
            entries = self._entries.get(job.jid)
            # mostly the attempt's claim is the job's latest entry of this flush
            if entries and entries[-1].token == token:
                entry = entries[-1]
            else:
                entry = self._attempt(job, token, at)
            entry.finished = at
            entry.status = status
            entry.state = state
            entry.due = when
            entry.error = error
            entry.output = output

    def changed(self, at: int, jobs: list[Any], state: int, reason: str | None) -> None:
        """Jobs moved to ``state`` for ``reason`` outside an attempt."""
        for job in jobs:
            self._list(job).append(_Entry(at, state, job.attempt, reason=reason))

    def _list(self, job: Any) -> list[_Entry]:
        entries = self._entries.get(job.jid)
        if entries is None:
            _check_number(job.jid)
            entries = self._entries[job.jid] = []
            self._jobs[job.jid] = job
        return entries

    def _attempt(self, job: Any, token: int, at: int) -> _Entry:
        """The entry of this attempt in this flush, made if the flush has none yet."""
        entries = self._list(job)
        for entry in reversed(entries):
            if entry.token == token:
                return entry
        entry = _Entry(at, self._leased, job.attempt, token)
        entries.append(entry)
        return entry

    # -- rows --------------------------------------------------------------------
    def cut(self, live: Live, new: Container[int], hold_from: int | None = None) -> list[Any]:
        """Rows of every job, except (with ``hold_from``) jobs whose entries are all
        open attempts leased after ``hold_from`` and that are not in ``new``: those
        stay for the next cut. Everything else starts empty again."""
        rows: list[Any] = []
        held_entries: dict[int, list[_Entry]] = {}
        held_jobs: dict[int, Any] = {}
        jobs = self._jobs
        for jid, entries in self._entries.items():
            if hold_from is not None and jid not in new and _fresh_claims(entries, hold_from):
                held_entries[jid] = entries
                held_jobs[jid] = jobs[jid]
                continue
            for entry in entries[:-1]:
                rows.append(self._row(jid, entry, *self._state_after(entry)))
            rows.append(self._current(jid, entries[-1], jobs[jid], live))
        self._entries = held_entries
        self._jobs = held_jobs
        return rows

    def _current(self, jid: int, entry: _Entry, job: Any, live: Live) -> Any:
        """A job's last row: its state as it is now."""
        state = job.state
        if state == self._leased or state == self._pending:
            due, token, worker, deadline = live(jid, state)
        else:
            due, token, worker, deadline = 0, 0, None, 0
        return self._row(
            jid, entry, state, job.attempt, due, token, worker, deadline, job.last_token,
            job.last_status or None,
        )  # fmt: skip

    def _state_after(self, entry: _Entry) -> tuple[int, int, int, int, str | None, int, int, Any]:
        """The state right after an entry that is not the job's last in the flush."""
        if entry.state == self._leased and not entry.finished:
            return (self._leased, entry.attempt, 0, entry.token, entry.worker, entry.deadline,
                    0, None)  # fmt: skip
        if entry.finished:
            return (entry.state, entry.attempt, entry.due, 0, None, 0, entry.token, entry.status)
        return (entry.state, entry.attempt, entry.due, 0, None, 0, 0, None)

    def _row(
        self, jid: int, entry: _Entry, state: int, attempt: int, due: int, lease_token: int,
        lease_worker: str | None, lease_deadline: int, last_token: int, last_status: Any,
    ) -> Any:  # fmt: skip
        return tuple.__new__(
            self._row_type,
            (jid, entry.at, state, attempt, due, lease_token, lease_worker, lease_deadline,
             last_token, last_status,
             entry.token, entry.worker, entry.leased_at, entry.deadline, entry.finished,
             entry.status, entry.error, entry.output, entry.reason),
        )  # fmt: skip


def _check_number(jid: int) -> None:
    if jid < 0:
        raise ValueError("a job number must be non-negative")


def _same_lengths(*columns: Sequence[Any]) -> None:
    """Refused before anything changes, as the compiled kernel does."""
    if len({len(column) for column in columns}) > 1:
        raise ValueError("columns of different lengths")


def _fresh_claims(entries: list[_Entry], since: int) -> bool:
    """Nothing but open attempts, all leased after ``since``."""
    for entry in entries:
        if entry.finished or not entry.leased_at or entry.leased_at <= since:
            return False
    return True
