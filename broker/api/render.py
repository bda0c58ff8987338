"""Engine and store objects -> response bodies.

Payloads are written back as the stored bytes (``orjson.Fragment``), never
parsed and re-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from .. import states
from .._native import Wire
from .._native.wire_py import payload_digest as digest
from ..engine import AckReply, Engine, Grant, SubmitReply
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


def raw_json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


_WIRE = Wire()


def ack_results(job_ids: Sequence[str], replies: Sequence[AckReply]) -> orjson.Fragment:
    """The ack reply's ``results``: ``{jobId, outcome[, state]}`` per result."""
    return orjson.Fragment(_WIRE.ack_results(job_ids, replies, states.NAMES))


def submitted(replies: Sequence[SubmitReply]) -> bytes:
    """The submission reply, ``{"jobs": [{jobId, state, deduplicated}, ...]}``."""
    return _WIRE.submitted(replies, states.NAMES)


def claimed_jobs(engine: Engine, grant: Grant) -> orjson.Fragment:
    """The JSON array of a grant's jobs, as the contract's claim reply holds it,
    written by the wire kernel in one pass."""
    return orjson.Fragment(
        _WIRE.claimed(
            grant.jobs,
            grant.tokens,
            grant.deadlines,
            engine.job_types.names,
            engine.tenants.names,
            engine.retry.ceiling,
        )
    )


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
        # encoded alone: inside the view it would sit three levels deeper than it was
        # stored, past what orjson writes for an output stored near its 254 levels
        "output": orjson.Fragment(orjson.dumps(result.get("output"))),
        "artifacts": result.get("artifacts", []),
    }
