"""The OpenAPI description of DAG runs and job replay/cancel (``broker/api/runs.py``)."""

from __future__ import annotations

from typing import Any

from .openapi_parts import AUTH, IDEMPOTENCY_HEADER, body, errors, ok, op, path_param, ref

_STATUS = {"type": "string", "enum": ["running", "succeeded", "failed", "canceled"]}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


_PAGE = [
    {
        "name": "page_size",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    },
    {"name": "page_token", "in": "query", "required": False, "schema": {"type": "string"}},
]
_REASON = {
    "name": "X-Stella-Operator-Reason",
    "in": "header",
    "required": True,
    "description": "why; written to the audit log",
    "schema": {"type": "string", "maxLength": 256},
}

RUN_SCHEMAS: dict[str, Any] = {
    "RunRequest": {
        "type": "object",
        "required": ["jobs"],
        "additionalProperties": False,
        "properties": {
            "runToken": {
                "type": "string",
                "maxLength": 128,
                "description": "the same token (per tenant) finds the first run again",
            },
            "jobs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10000,
                "description": "every job needs a run-local key; dependsOn names keys of "
                "this run; a cycle, a dangling or duplicate key refuses the run whole",
                "items": ref("JobSubmission"),
            },
        },
    },
    "RunCreated": {
        "type": "object",
        "properties": {
            "runId": {"type": "string"},
            "deduplicated": {"type": "boolean"},
            "jobs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": ["string", "null"]},
                        "jobId": {"type": "string"},
                        "state": {"type": "string"},
                    },
                },
            },
        },
    },
    "Run": {
        "type": "object",
        "description": "status aggregated from the run's jobs: running while one is pending, "
        "ready or leased; else succeeded, failed (a job dead or blocked) or canceled",
        "properties": {
            "runId": {"type": "string"},
            "status": _STATUS,
            "runToken": {"type": ["string", "null"]},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "startedAt": _NULLABLE_TIME,
            "finishedAt": _NULLABLE_TIME,
            "jobCount": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "RunPage": {
        "type": "object",
        "description": "newest first (createdAt, then runId, descending)",
        "properties": {
            "runs": {"type": "array", "items": ref("Run")},
            "nextPageToken": {"type": ["string", "null"]},
        },
    },
    "RunDag": {
        "type": "object",
        "properties": {
            "runId": {"type": "string"},
            "status": _STATUS,
            "nodes": {"type": "array", "items": {"type": "object"}},
            "edges": {
                "type": "array",
                "description": "parent -> child, by jobId",
                "items": {
                    "type": "object",
                    "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
                },
            },
        },
    },
    "RunTimeline": {
        "type": "object",
        "description": "per job (in submission order, paged): queued and finished times and "
        "every attempt with its worker",
        "properties": {
            "runId": {"type": "string"},
            "jobs": {"type": "array", "items": {"type": "object"}},
            "nextPageToken": {"type": ["string", "null"]},
        },
    },
    "ReplayRequest": {
        "type": "object",
        "required": ["jobIds"],
        "additionalProperties": False,
        "properties": {
            "jobIds": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {"type": "string", "format": "uuid"},
                "description": "failed (dead or canceled) or blocked jobs of the run; a blocked "
                "job replays the failed ancestors that block it",
            }
        },
    },
    "RunReplayed": {
        "type": "object",
        "properties": {
            "runId": {"type": "string"},
            "status": _STATUS,
            "replayed": {"type": "array", "items": {"type": "string"}},
        },
    },
    "RunCanceled": {
        "type": "object",
        "properties": {"runId": {"type": "string"}, "canceled": {"type": "integer"}},
    },
    "JobReplayed": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "state": {"type": "string"},
            "replayOf": {"type": "string"},
        },
    },
    "JobCanceled": {
        "type": "object",
        "properties": {"jobId": {"type": "string"}, "state": {"type": "string"}},
    },
}


def run_paths(base: str) -> dict[str, Any]:
    run_id = path_param("runId")
    job_id = path_param("jobId", "uuid")
    read = "orch:read or orch:operate"
    return {
        f"{base}/runs": {
            "post": op(
                "Create a run with its jobs and edges (answered once durable)",
                "orch:operate",
                {
                    **ok("RunCreated", "201", "created"),
                    **ok("RunCreated", "200", "found again by runToken"),
                    **errors(*AUTH, "409", "413", "503"),
                },
                requestBody=body("RunRequest"),
                parameters=[IDEMPOTENCY_HEADER],
            ),
            "get": op(
                "A tenant's runs, newest first",
                read,
                {**ok("RunPage"), **errors(*AUTH)},
                parameters=[
                    *_PAGE,
                    {"name": "status", "in": "query", "required": False, "schema": _STATUS},
                ],
            ),
        },
        f"{base}/runs/{{runId}}": {
            "get": op("A run's status, counts and timings", read,
                      {**ok("Run"), **errors(*AUTH, "404")}, parameters=[run_id]),
        },
        f"{base}/runs/{{runId}}/dag": {
            "get": op("A run's jobs and edges with live states", read,
                      {**ok("RunDag"), **errors(*AUTH, "404")}, parameters=[run_id]),
        },
        f"{base}/runs/{{runId}}/timeline": {
            "get": op("Gantt data: jobs and attempts over time", read,
                      {**ok("RunTimeline"), **errors(*AUTH, "404")},
                      parameters=[run_id, *_PAGE]),
        },
        f"{base}/runs/{{runId}}/cancel": {
            "post": op(
                "Cancel every live job of a run (leased ones too: their acks then conflict)",
                "orch:operate",
                {**ok("RunCanceled"), **errors(*AUTH, "404", "503")},
                parameters=[run_id],
            )
        },
        f"{base}/runs/{{runId}}/replay": {
            "post": op(
                "Re-run failed or blocked jobs and everything downstream; succeeded jobs stay",
                "orch:operate",
                {**ok("RunReplayed"), **errors(*AUTH, "404", "409", "503")},
                requestBody=body("ReplayRequest"),
                parameters=[run_id, _REASON],
            )
        },
        f"{base}/jobs/{{jobId}}/replay": {
            "post": op(
                "Clone a finished job as a new high-priority job (replayOf points back)",
                "orch:operate",
                {**ok("JobReplayed", "201", "created"), **errors(*AUTH, "404", "409", "503")},
                parameters=[job_id, {**_REASON, "required": False}],
            )
        },
        f"{base}/jobs/{{jobId}}/cancel": {
            "post": op(
                "Cancel one job, leased or not (its worker's ack then conflicts)",
                "orch:operate",
                {**ok("JobCanceled"), **errors(*AUTH, "404", "409", "503")},
                parameters=[job_id],
            )
        },
    }  # fmt: skip
