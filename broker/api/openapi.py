"""The OpenAPI 3.1 document of every route the server has.

``tests/api/test_openapi.py`` checks that each route registered in the app
appears here with its method, so the two cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .openapi_limits import LIMIT_SCHEMAS, limit_paths
from .openapi_parts import AUTH, IDEMPOTENCY_HEADER, body, errors, ok, op, ref
from .openapi_runs import RUN_SCHEMAS, run_paths

GENERATED_AT = "2026-11-27T00:00:00Z"
BASE = "/api/v1/orchestrator"

_ERROR_CODES = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "TENANT_REQUIRED",
    "VALIDATION_FAILED",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "ILLEGAL_TRANSITION",
    "LEASE_CONFLICT",
    "IDEMPOTENCY_CONFLICT",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
    "BACKPRESSURE",
    "NOT_READY",
    "INTERNAL",
]


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "traceId"],
                "properties": {
                    "code": {"type": "string", "enum": _ERROR_CODES},
                    "message": {"type": "string"},
                    "traceId": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "problem": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    },
    "JobSubmission": {
        "type": "object",
        "required": ["jobType", "payload"],
        "additionalProperties": False,
        "properties": {
            "jobType": {"type": "string", "pattern": "^[a-z0-9._-]{1,128}$"},
            "payload": {"description": "any JSON, at most 1 MiB encoded"},
            "priority": {"type": "integer", "minimum": 0, "maximum": 9, "default": 5},
            "sourceHost": {"type": "string", "maxLength": 253},
            "idempotencyKey": {"type": "string", "maxLength": 256},
            "notBefore": {"type": "string", "format": "date-time"},
            "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
            "leaseSeconds": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 30},
            "correlationId": {"type": "string", "maxLength": 256},
            "project": {"type": "string", "maxLength": 128},
            "key": {"type": "string", "maxLength": 128},
            "runId": {
                "type": "string",
                "maxLength": 128,
                "description": "join this run (or start it under this id); every job of the "
                "submission must name the same run; another tenant's run is 404",
            },
            "dependsOn": {
                "type": "array",
                "items": {"type": "string", "maxLength": 128},
                "maxItems": 1000,
                "description": "keys of jobs of the same run this job waits for",
            },
        },
    },
    "SubmitRequest": {
        "type": "object",
        "required": ["jobs"],
        "additionalProperties": False,
        "properties": {
            "jobs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10000,
                "items": ref("JobSubmission"),
            }
        },
    },
    "SubmitResponse": {
        "type": "object",
        "properties": {
            "jobs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "jobId": {"type": "string", "format": "uuid"},
                        "state": {
                            "type": "string",
                            "enum": [
                                "ready",
                                "pending",
                                "leased",
                                "succeeded",
                                "dead",
                                "canceled",
                                "blocked",
                            ],
                        },
                        "deduplicated": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "ClaimRequest": {
        "type": "object",
        "required": ["workerId", "jobTypes"],
        "additionalProperties": False,
        "properties": {
            "workerId": {"type": "string", "maxLength": 128},
            "jobTypes": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {"type": "string"},
            },
            "maxJobs": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
            "leaseSeconds": {"type": "integer", "minimum": 1, "maximum": 3600},
            "waitMs": {"type": "integer", "minimum": 0, "maximum": 30000, "default": 0},
        },
    },
    "ClaimedJob": {
        "type": "object",
        "properties": {
            "jobId": {"type": "string"},
            "leaseId": {"type": "string"},
            "leaseUntil": {"type": "string", "format": "date-time"},
            "attempt": {"type": "integer"},
            "maxAttempts": {"type": "integer"},
            "jobType": {"type": "string"},
            "priority": {"type": "integer"},
            "tenant": {"type": "string"},
            "project": {"type": ["string", "null"]},
            "correlationId": {"type": ["string", "null"]},
            "idempotencyKey": {"type": ["string", "null"]},
            "runId": {"type": ["string", "null"]},
            "payload": {},
            "payloadDigest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "retryHint": {"type": "object", "properties": {"backoffSeconds": {"type": "number"}}},
        },
    },
    "ClaimResponse": {
        "type": "object",
        "properties": {"jobs": {"type": "array", "items": ref("ClaimedJob")}},
    },
    "HeartbeatRequest": {
        "type": "object",
        "required": ["workerId", "leases"],
        "additionalProperties": False,
        "properties": {
            "workerId": {"type": "string"},
            "leases": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["jobId", "leaseId"],
                    "properties": {
                        "jobId": {"type": "string"},
                        "leaseId": {"type": "string"},
                        "extendSeconds": {"type": "integer", "minimum": 1, "maximum": 3600},
                        "progress": {
                            "type": "object",
                            "properties": {
                                "pct": {"type": "number", "minimum": 0, "maximum": 100},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
    "HeartbeatResponse": {
        "type": "object",
        "properties": {
            "leases": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "jobId": {"type": "string"},
                        "status": {"type": "string", "enum": ["extended", "lost"]},
                        "leaseUntil": {"type": "string", "format": "date-time"},
                    },
                },
            }
        },
    },
    "AckRequest": {
        "type": "object",
        "required": ["workerId", "results"],
        "additionalProperties": False,
        "properties": {
            "workerId": {"type": "string"},
            "results": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["jobId", "leaseId", "status"],
                    "properties": {
                        "jobId": {"type": "string"},
                        "leaseId": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["succeeded", "failed", "canceled", "timed_out"],
                        },
                        "error": {
                            "type": "object",
                            "properties": {
                                "class": {"type": "string"},
                                "message": {"type": "string"},
                                "retryable": {"type": "boolean"},
                                "retryAfterSeconds": {
                                    "type": "number",
                                    "minimum": 0,
                                    "maximum": 86400,
                                },
                            },
                        },
                        "artifacts": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["uri", "digest"],
                                "properties": {
                                    "uri": {"type": "string"},
                                    "digest": {
                                        "type": "string",
                                        "pattern": "^sha256:[0-9a-f]{64}$",
                                    },
                                    "mime": {"type": "string"},
                                },
                            },
                        },
                        "output": {},
                    },
                },
            },
            "claim": {
                "type": "object",
                "description": "a claim without workerId: the reply "
                "then also holds jobs, exactly as a claim returns them",
            },
        },
    },
    "AckResponse": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "jobId": {"type": "string"},
                        "outcome": {
                            "type": "string",
                            "enum": ["accepted", "conflict", "not_found"],
                        },
                        "state": {"type": "string"},
                    },
                },
            },
            "jobs": {"type": "array", "items": ref("ClaimedJob")},
        },
    },
    "Job": {
        "type": "object",
        "description": "a job with its attempts (oldest first) and other transitions",
        "properties": {
            "jobId": {"type": "string"},
            "state": {"type": "string"},
            "attempt": {"type": "integer"},
            "maxAttempts": {"type": "integer"},
            "jobType": {"type": "string"},
            "priority": {"type": "integer"},
            "payload": {},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "attempts": {"type": "array", "items": {"type": "object"}},
            "transitions": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
}


_EVENTS = op(
    "The tenant's broker events as Server-Sent Events: incident (a circuit breaker opened),"
    " operator (an audited operator action), run (a run's new status); each made once"
    " the fact is durable. Reconnect with Last-Event-ID to get what was missed, while the"
    " broker still holds it (the stream's first line says ': resumed' or ': from-now').",
    "orch:read or orch:operate",
    {
        "200": {
            "description": "an endless stream: 'id: N', 'event: <kind>', 'data: <JSON>' per"
            " event; ': keep-alive' comments while idle",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(*AUTH),
    },
    parameters=[
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "the id of the last event received; the stream resumes after it",
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        }
    ],
)


@cache
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        f"{BASE}/jobs": {
            "post": op(
                "Submit jobs (all or nothing; answered once durable)",
                "orch:operate",
                {**ok("SubmitResponse", "201", "created"), **errors(*AUTH, "409", "413", "503")},
                requestBody=body("SubmitRequest"),
                parameters=[IDEMPOTENCY_HEADER],
            )
        },
        f"{BASE}/jobs/{{jobId}}": {
            "get": op(
                "A job with its history",
                "orch:read or orch:operate",
                {**ok("Job"), **errors(*AUTH, "404")},
                parameters=[
                    {
                        "name": "jobId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
            )
        },
        f"{BASE}/worker/claim": {
            "post": op(
                "Lease ready jobs (long poll with waitMs)",
                "orch:worker",
                {**ok("ClaimResponse"), **errors(*AUTH)},
                requestBody=body("ClaimRequest"),
            )
        },
        f"{BASE}/worker/heartbeat": {
            "post": op(
                "Extend leases and report progress",
                "orch:worker",
                {**ok("HeartbeatResponse"), **errors(*AUTH)},
                requestBody=body("HeartbeatRequest"),
            )
        },
        f"{BASE}/worker/ack": {
            "post": op(
                "Report attempt results (answered once durable), optionally claim the next jobs",
                "orch:worker",
                {**ok("AckResponse"), **errors(*AUTH, "409", "503")},
                requestBody=body("AckRequest"),
                parameters=[IDEMPOTENCY_HEADER],
            )
        },
        **run_paths(BASE),
        **limit_paths(BASE),
        f"{BASE}/events": {"get": _EVENTS},
        "/healthz": {"get": op("The process is up", None, ok("Status"))},
        "/readyz": {
            "get": op("State loaded and store reachable", None, {**ok("Status"), **errors("503")})
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics (text format 0.0.4)",
                None,
                {"200": {"description": "metrics", "content": {"text/plain": {}}}},
            )
        },
        "/.well-known/openapi": {
            "get": op(
                "This document, wrapped with its version",
                None,
                {"200": {"description": "OpenAPI discovery"}},
            )
        },
        "/openapi/orchestrator.json": {
            "get": op("This document", None, {"200": {"description": "OpenAPI 3.1"}})
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "StellaOps Orchestrator broker", "version": "v1"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {**_SCHEMAS, **RUN_SCHEMAS, **LIMIT_SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
