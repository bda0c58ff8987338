"""The OpenAPI 3.1 document of every route the server has.

``tests/api/test_openapi.py`` checks that each route registered in the app
appears here with its method, so the two cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any

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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _ok(name: str, status: str = "200", description: str = "OK") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": _ref(name)}},
        }
    }


def _errors(*statuses: str) -> dict[str, Any]:
    return {
        status: {
            "description": "error envelope",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in statuses
    }


_AUTH = ("401", "403", "400")
_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays the first answer for the same (tenant, path, key) for 24 h.",
    "schema": {"type": "string", "maxLength": 256},
}

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
            "runId": {"type": "string", "maxLength": 128},
            "key": {"type": "string", "maxLength": 128},
            "dependsOn": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": 0,
                "description": "DAG wiring: not supported yet",
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
                "items": _ref("JobSubmission"),
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
        "properties": {"jobs": {"type": "array", "items": _ref("ClaimedJob")}},
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
            "jobs": {"type": "array", "items": _ref("ClaimedJob")},
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


def _op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if scope:
        op["security"] = [{"bearer": []}]
        op["x-required-scopes"] = scope.split(" or ")
    else:
        op["security"] = []
    return op


@cache
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        f"{BASE}/jobs": {
            "post": _op(
                "Submit jobs (all or nothing; answered once durable)",
                "orch:operate",
                {**_ok("SubmitResponse", "201", "created"), **_errors(*_AUTH, "409", "413", "503")},
                requestBody=_body("SubmitRequest"),
                parameters=[_IDEMPOTENCY_HEADER],
            )
        },
        f"{BASE}/jobs/{{jobId}}": {
            "get": _op(
                "A job with its history",
                "orch:read or orch:operate",
                {**_ok("Job"), **_errors(*_AUTH, "404")},
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
            "post": _op(
                "Lease ready jobs (long poll with waitMs)",
                "orch:worker",
                {**_ok("ClaimResponse"), **_errors(*_AUTH)},
                requestBody=_body("ClaimRequest"),
            )
        },
        f"{BASE}/worker/heartbeat": {
            "post": _op(
                "Extend leases and report progress",
                "orch:worker",
                {**_ok("HeartbeatResponse"), **_errors(*_AUTH)},
                requestBody=_body("HeartbeatRequest"),
            )
        },
        f"{BASE}/worker/ack": {
            "post": _op(
                "Report attempt results (answered once durable), optionally claim the next jobs",
                "orch:worker",
                {**_ok("AckResponse"), **_errors(*_AUTH, "409", "503")},
                requestBody=_body("AckRequest"),
                parameters=[_IDEMPOTENCY_HEADER],
            )
        },
        "/healthz": {"get": _op("The process is up", None, _ok("Status"))},
        "/readyz": {
            "get": _op(
                "State loaded and store reachable", None, {**_ok("Status"), **_errors("503")}
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text format 0.0.4)",
                None,
                {"200": {"description": "metrics", "content": {"text/plain": {}}}},
            )
        },
        "/.well-known/openapi": {
            "get": _op(
                "This document, wrapped with its version",
                None,
                {"200": {"description": "OpenAPI discovery"}},
            )
        },
        "/openapi/orchestrator.json": {
            "get": _op("This document", None, {"200": {"description": "OpenAPI 3.1"}})
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "StellaOps Orchestrator broker", "version": "v1"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
