"""A run as read from the ledger -> the run summary, DAG and timeline bodies."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from .. import states
from ..errors import ValidationFailed
from ..store import JobHistory, RunHistory, RunRow
from ..store.text import storable
from .ids import job_id, lease_id
from .timefmt import rfc3339

_LIVE = frozenset({states.PENDING, states.READY, states.LEASED})


def meta_of(job: JobHistory) -> dict[str, Any]:
    raw = job.job.meta
    return orjson.loads(raw) if raw else {}


def run_row(run: RunRow) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "status": run.status,
        "runToken": run.token,
        "createdAt": rfc3339(run.created),
        "updatedAt": rfc3339(run.updated),
    }


def summary(found: RunHistory) -> dict[str, Any]:
    """Status, counts per state and timings, aggregated from the run's jobs."""
    counts = dict.fromkeys(states.NAMES, 0)
    started = [a.leased_at for job in found.jobs for a in job.attempts if a.leased_at]
    for job in found.jobs:
        counts[states.NAMES[job.job.state]] += 1
    finished = None
    if found.run.status != "running":
        finished = max((job.job.updated for job in found.jobs), default=found.run.updated)
    return {
        **run_row(found.run),
        "jobCount": len(found.jobs),
        "counts": counts,
        "startedAt": rfc3339(min(started)) if started else None,
        "finishedAt": rfc3339(finished) if finished is not None else None,
    }


def dag(found: RunHistory) -> dict[str, Any]:
    """Nodes with their live states and edges parent -> child, ready to draw."""
    ids = {job.job.jid: job_id(job.job.created, job.job.jid) for job in found.jobs}
    nodes = []
    edges: list[dict[str, str]] = []
    for job in found.jobs:
        row = job.job
        meta = meta_of(job)
        nodes.append(
            {
                "jobId": ids[row.jid],
                "key": meta.get("key"),
                "jobType": row.job_type,
                "state": states.NAMES[row.state],
                "attempt": row.attempt,
            }
        )
        edges.extend(
            {"from": ids[parent], "to": ids[row.jid]}
            for parent in meta.get("parents", ())
            if parent in ids
        )
    return {"runId": found.run.run_id, "status": found.run.status, "nodes": nodes, "edges": edges}


def timeline(found: RunHistory, after: int, limit: int) -> dict[str, Any]:
    """Gantt data: per job (in id order, paged) its queued/finished times and attempts."""
    page = [job for job in found.jobs if job.job.jid > after][: limit + 1]
    more = len(page) > limit
    page = page[:limit]
    jobs = []
    for job in page:
        row = job.job
        jobs.append(
            {
                "jobId": job_id(row.created, row.jid),
                "key": meta_of(job).get("key"),
                "jobType": row.job_type,
                "state": states.NAMES[row.state],
                "queuedAt": rfc3339(row.created),
                "finishedAt": None if row.state in _LIVE else rfc3339(row.updated),
                "attempts": [
                    {
                        "attempt": number,
                        "leaseId": lease_id(a.token),
                        "workerId": a.worker,
                        "leasedAt": rfc3339(a.leased_at) if a.leased_at else None,
                        "finishedAt": rfc3339(a.finished) if a.finished else None,
                        "status": a.status or "running",
                    }
                    for number, a in enumerate(job.attempts, 1)
                ],
            }
        )
    token = encode_cursor(page[-1].job.jid) if more and page else None
    return {"runId": found.run.run_id, "jobs": jobs, "nextPageToken": token}


# -- opaque page tokens ------------------------------------------------------------------
def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(token: str | None, shape: type) -> Any:
    """The value a page token carries, checked against ``shape``; None for no token."""
    if token is None:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        value = None
    if shape is int and type(value) is int:
        return value
    if shape is tuple and _is_run_cursor(value):
        return (value[0], value[1])
    raise ValidationFailed(
        "page_token is not a token this server gave out",
        details=[{"field": "page_token", "problem": "invalid"}],
    )


def _is_run_cursor(value: Any) -> bool:
    return (
        type(value) is list
        and len(value) == 2
        and type(value[0]) is int
        and -(2**63) <= value[0] < 2**63  # a Postgres bigint
        and type(value[1]) is str
        and storable(value[1])
    )
