"""Ledger records: everything the engine tells a store, batch-shaped.

A command returns one record per kind of change, covering every job it
touched, so a claim of 100 jobs costs one record, not a hundred. Records
refer to the engine's ``Job`` objects and plain ints; the store decides how
to persist them (and may coalesce several records about one job). They are
NamedTuples: made on every command, and a tuple is the cheapest immutable
record Python has.
"""

from __future__ import annotations

from typing import NamedTuple

from .job import Job


class Submitted(NamedTuple):
    """New jobs, in their initial state (pending or ready)."""

    at: int
    jobs: list[Job]


class Leased(NamedTuple):
    """Attempts that started: ``jobs[i]`` is leased with ``tokens[i]`` until ``deadlines[i]``."""

    at: int
    worker: str
    jobs: list[Job]
    tokens: list[int]
    deadlines: list[int]


class Extended(NamedTuple):
    """Heartbeats that moved lease deadlines of ``jobs``; ``progress[i]`` is opaque JSON
    bytes or None."""

    at: int
    jobs: list[Job]
    tokens: list[int]
    deadlines: list[int]
    progress: list[bytes | None]


class Finished(NamedTuple):
    """Attempts that ended: acked by a worker, or their lease expired.

    ``statuses[i]`` is what happened to the attempt (``succeeded``, ``failed``,
    ``timed_out``, ``canceled`` from a worker; ``expired`` from the reaper);
    ``states[i]`` is the job's state afterwards and ``due[i]`` when it becomes
    claimable again (0 when it does not wait).
    """

    at: int
    jobs: list[Job]
    tokens: list[int]
    statuses: list[str]
    states: list[int]
    due: list[int]
    errors: list[bytes | None]
    outputs: list[bytes | None]


class Changed(NamedTuple):
    """Jobs moved to ``state`` for ``reason`` outside an attempt (timer due, cancel)."""

    at: int
    jobs: list[Job]
    state: int
    reason: str


class RunChanged(NamedTuple):
    """A run was created or its status changed (``running``, ``succeeded``, ``failed``,
    ``canceled``); carries the whole run so a store can upsert it."""

    at: int
    run_id: str
    tenant: str
    token: str | None
    created: int
    status: str


class Audited(NamedTuple):
    """An operator action, with who asked and why (the audit log)."""

    at: int
    tenant: str
    actor: str
    action: str
    target: str
    reason: str | None
    ticket: str | None


class LimitChanged(NamedTuple):
    """A limit was set (``config`` a ``Quota`` / ``Source``) or removed (None).

    ``kind`` is "quota" (``name`` a job type), "source" (a source host) or
    "weight" (``name`` empty, ``config`` the tenant's fairness weight)."""

    at: int
    kind: str
    tenant: str
    name: str
    config: object


Record = Submitted | Leased | Extended | Finished | Changed | RunChanged | Audited | LimitChanged
