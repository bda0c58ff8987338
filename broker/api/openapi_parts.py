"""Building blocks of the OpenAPI document, shared by its route modules."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def ok(name: str, status: str = "200", description: str = "OK") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": ref(name)}},
        }
    }


def errors(*statuses: str) -> dict[str, Any]:
    return {
        status: {
            "description": "error envelope",
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status in statuses
    }


AUTH = ("401", "403", "400")
IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays the first answer for the same (tenant, path, key) for 24 h.",
    "schema": {"type": "string", "maxLength": 256},
}


def op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if scope:
        op["security"] = [{"bearer": []}]
        op["x-required-scopes"] = scope.split(" or ")
    else:
        op["security"] = []
    return op


def path_param(name: str, fmt: str | None = None) -> dict[str, Any]:
    """A required string parameter of the path."""
    schema: dict[str, Any] = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "path", "required": True, "schema": schema}
