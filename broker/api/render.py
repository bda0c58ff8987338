"""Engine and store objects -> response bodies.

Payloads are written back as the stored bytes (``orjson.Fragment``), never
parsed and re-encoded.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from .. import states
from ..engine import Engine, Grant
from ..store import Attempt, JobHistory
from .ids import job_id as job_id
from .ids import lease_id
from .timefmt import rfc3339


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def claimed_jobs(engine: Engine, grant: Grant) -> list[dict[str, Any]]:
    tenants = engine.tenants
    types = engine.job_types
    ceiling = engine.retry.ceiling
    until_cache: dict[int, str] = {}
    out = []
    for job, token, deadline in zip(grant.jobs, grant.tokens, grant.deadlines, strict=True):
        until = until_cache.get(deadline)
        if until is None:
            until = until_cache[deadline] = rfc3339(deadline)
        meta = job.meta
        out.append(
            {
                "jobId": job_id(job.created, job.jid),
                "leaseId": lease_id(token),
                "leaseUntil": until,
                "attempt": job.attempt,
                "maxAttempts": job.max_attempts,
                "jobType": types.name(job.jtype),
                "priority": job.priority,
                "tenant": tenants.name(job.tenant),
                "project": meta.project if meta else None,
                "correlationId": meta.correlation_id if meta else None,
                "idempotencyKey": meta.idempotency_key if meta else None,
                "runId": meta.run_id if meta else None,
                "payload": orjson.Fragment(job.payload),
                "payloadDigest": digest(job.payload),
                "retryHint": {"backoffSeconds": ceiling(job.attempt) / 1000},
            }
        )
    return out


def job_view(history: JobHistory) -> dict[str, Any]:
    row = history.job
    meta = orjson.loads(row.meta) if row.meta else {}
    view: dict[str, Any] = {
        "jobId": job_id(row.created, row.jid),
        "tenant": row.tenant,
        "state": states.NAMES[row.state],
        "attempt": row.attempt,
        "maxAttempts": row.max_attempts,
        "jobType": row.job_type,
        "priority": row.priority,
        "project": meta.get("project"),
        "correlationId": meta.get("correlationId"),
        "idempotencyKey": meta.get("idempotencyKey"),
        "sourceHost": meta.get("sourceHost"),
        "runId": meta.get("runId"),
        "key": meta.get("key"),
        "replayOf": meta.get("replayOf"),
        "leaseSeconds": row.lease_ms // 1000,
        "payload": orjson.Fragment(row.payload),
        "payloadDigest": digest(row.payload),
        "createdAt": rfc3339(row.created),
        "updatedAt": rfc3339(row.updated),
        "notBefore": rfc3339(row.not_before) if row.not_before else None,
        "nextAttemptAt": rfc3339(row.due) if row.due else None,
        "leaseUntil": rfc3339(row.lease_deadline) if row.lease_token else None,
        "attempts": [_attempt(i + 1, a) for i, a in enumerate(history.attempts)],
        "transitions": [
            {"at": rfc3339(t.at), "state": states.NAMES[t.state], "reason": t.reason}
            for t in history.transitions
        ],
    }
    return view


def _attempt(number: int, row: Attempt) -> dict[str, Any]:
    result = orjson.loads(row.output) if row.output else {}
    return {
        "attempt": number,
        "leaseId": lease_id(row.token),
        "workerId": row.worker or None,
        "leasedAt": rfc3339(row.leased_at) if row.leased_at else None,
        "leaseUntil": rfc3339(row.deadline) if row.deadline else None,
        "finishedAt": rfc3339(row.finished) if row.finished else None,
        "status": row.status or "running",
        "error": orjson.Fragment(row.error) if row.error else None,
        "output": result.get("output"),
        "artifacts": result.get("artifacts", []),
    }
