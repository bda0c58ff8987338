"""The OpenAPI description of flow control (``broker/api/limits.py``)."""

from __future__ import annotations

from typing import Any

from .openapi_parts import AUTH, body, errors, ok, op, path_param, ref

_NUM = {"type": ["integer", "null"], "minimum": 0}
_RATE = {"type": ["number", "null"], "exclusiveMinimum": 0, "description": "tokens per second"}


_OPERATOR = [
    {
        "name": "X-Stella-Operator-Reason",
        "in": "header",
        "required": True,
        "description": "why; written to the audit log with the token's subject",
        "schema": {"type": "string", "maxLength": 256},
    },
    {
        "name": "X-Stella-Operator-Ticket",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
    },
]

LIMIT_SCHEMAS: dict[str, Any] = {
    "QuotaRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "maxActive": {**_NUM, "description": "jobs of this type in flight at once"},
            "perHour": {**_NUM, "minimum": 1},
            "burst": {**_NUM, "minimum": 1, "description": "tokens saved up; default perHour"},
            "paused": {"type": "boolean", "default": False},
        },
    },
    "Quota": {
        "type": "object",
        "description": "a quota and what it allows now; jobs over it stay queued",
        "properties": {
            "jobType": {"type": "string"},
            "maxActive": _NUM,
            "perHour": _NUM,
            "burst": _NUM,
            "paused": {"type": "boolean"},
            "inFlight": {"type": "integer"},
            "tokens": {"type": ["integer", "null"]},
            "held": {"type": "boolean", "description": "the queue waits on this quota"},
        },
    },
    "Quotas": {
        "type": "object",
        "properties": {"quotas": {"type": "array", "items": ref("Quota")}},
    },
    "QuotaSummary": {"type": "object"},
    "Blackout": {
        "type": "object",
        "required": ["start", "end"],
        "properties": {
            "start": {"type": "string", "description": "RFC 3339, or HH:MM (UTC) when daily"},
            "end": {"type": "string"},
            "daily": {"type": "boolean", "default": False},
        },
    },
    "SourceRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rate": _RATE,
            "burst": {**_NUM, "minimum": 1},
            "maxActive": _NUM,
            "paused": {"type": "boolean", "default": False},
            "blackouts": {"type": "array", "maxItems": 100, "items": ref("Blackout")},
        },
    },
    "Source": {
        "type": "object",
        "description": "a source's limits and live state: current (adaptive) and configured "
        "rate, tokens, penalties (upstream 429s), jobs in flight and parked, breakers",
        "properties": {
            "host": {"type": "string"},
            "rate": _RATE,
            "configuredRate": _RATE,
            "tokens": {"type": ["integer", "null"]},
            "penalties": {"type": "integer"},
            "penaltyUntil": {"type": ["string", "null"], "format": "date-time"},
            "inFlight": {"type": "integer"},
            "parked": {"type": "integer"},
            "paused": {"type": "boolean"},
            "throttleRate": _RATE,
            "throttleUntil": {"type": ["string", "null"], "format": "date-time"},
            "blackouts": {"type": "array", "items": ref("Blackout")},
            "breakers": {"type": "object", "description": "per job type: state and counts"},
        },
    },
    "Sources": {
        "type": "object",
        "properties": {"sources": {"type": "array", "items": ref("Source")}},
    },
    "Throttle": {
        "type": "object",
        "required": ["rate", "seconds"],
        "properties": {"rate": _RATE, "seconds": {"type": "integer", "minimum": 1}},
    },
    "Weight": {
        "type": "object",
        "required": ["weight"],
        "properties": {"weight": {"type": "integer", "minimum": 1, "maximum": 1000}},
    },
    "Audit": {
        "type": "object",
        "description": "the newest entries first (page_size of them)",
        "properties": {"entries": {"type": "array", "items": {"type": "object"}}},
    },
    "Removed": {"type": "object"},
    "Retried": {"type": "object"},
}


def limit_paths(base: str) -> dict[str, Any]:
    read = "orch:read or orch:quota"
    job_type, host = path_param("jobType"), path_param("host")
    change = {**ok("Quota"), **errors(*AUTH, "503")}
    source_change = {**ok("Source"), **errors(*AUTH, "503")}
    return {
        f"{base}/quotas": {"get": op("A tenant's quotas", read, {**ok("Quotas"), **errors(*AUTH)})},
        f"{base}/quotas/summary": {
            "get": op("Quotas at a glance", read, {**ok("QuotaSummary"), **errors(*AUTH)})
        },
        f"{base}/quotas/{{jobType}}": {
            "put": op("Set a job type's quota", "orch:quota", change,
                      requestBody=body("QuotaRequest"), parameters=[job_type, *_OPERATOR]),
            "delete": op("Remove a quota", "orch:quota",
                         {**ok("Removed"), **errors(*AUTH, "404")},
                         parameters=[job_type, *_OPERATOR]),
        },
        f"{base}/quotas/{{jobType}}/pause": {
            "post": op("Stop claims of a job type (in-flight work goes on)", "orch:quota",
                       change, parameters=[job_type, *_OPERATOR]),
        },
        f"{base}/quotas/{{jobType}}/resume": {
            "post": op("Claims of a job type again", "orch:quota", change,
                       parameters=[job_type, *_OPERATOR]),
        },
        f"{base}/sources": {
            "get": op("A tenant's sources", read, {**ok("Sources"), **errors(*AUTH)})
        },
        f"{base}/sources/{{host}}": {
            "get": op("A source's limits and live state", read,
                      {**ok("Source"), **errors(*AUTH, "404")}, parameters=[host]),
            "put": op("Set a source's rate, burst, concurrency, pause and blackouts",
                      "orch:quota", source_change, requestBody=body("SourceRequest"),
                      parameters=[host, *_OPERATOR]),
            "delete": op("Remove a source's limits", "orch:quota",
                         {**ok("Removed"), **errors(*AUTH, "404")},
                         parameters=[host, *_OPERATOR]),
        },
        f"{base}/sources/{{host}}/pause": {
            "post": op("Stop dispatching a source's jobs", "orch:quota", source_change,
                       parameters=[host, *_OPERATOR]),
        },
        f"{base}/sources/{{host}}/resume": {
            "post": op("Dispatch a source's jobs again", "orch:quota", source_change,
                       parameters=[host, *_OPERATOR]),
        },
        f"{base}/sources/{{host}}/throttle": {
            "post": op("A temporary rate for a source, until it expires", "orch:quota",
                       source_change, requestBody=body("Throttle"),
                       parameters=[host, *_OPERATOR]),
        },
        f"{base}/fairness": {
            "put": op("The tenant's weight in deficit round robin between tenants",
                      "orch:quota", {**ok("Weight"), **errors(*AUTH, "503")},
                      requestBody=body("Weight"), parameters=_OPERATOR),
        },
        f"{base}/audit": {
            "get": op("Operator actions and incidents, newest first", read,
                      {**ok("Audit"), **errors(*AUTH)},
                      parameters=[{"name": "page_size", "in": "query", "required": False,
                                   "schema": {"type": "integer", "minimum": 1,
                                              "maximum": 500}}]),
        },
        f"{base}/jobs/{{jobId}}/retry": {
            "post": op("Retry a dead or canceled job in place (a run's job: replayed in its run)",
                       "orch:operate", {**ok("Retried"), **errors(*AUTH, "404", "409", "503")},
                       parameters=[path_param("jobId", "uuid"), *_OPERATOR]),
        },
    }  # fmt: skip
