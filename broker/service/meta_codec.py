"""JobMeta <-> the JSON object stored in a job row's ``meta`` column."""

from __future__ import annotations

import orjson

from ..engine import JobMeta

_FIELDS = (
    ("project", "project"),
    ("correlation_id", "correlationId"),
    ("idempotency_key", "idempotencyKey"),
    ("source_host", "sourceHost"),
    ("run_id", "runId"),
    ("key", "key"),
)


def encode_meta(meta: JobMeta | None) -> bytes | None:
    if meta is None:
        return None
    return orjson.dumps(
        {wire: getattr(meta, attr) for attr, wire in _FIELDS if getattr(meta, attr) is not None}
    )


def decode_meta(raw: bytes | None) -> JobMeta | None:
    if raw is None:
        return None
    data = orjson.loads(raw)
    return JobMeta(**{attr: data.get(wire) for attr, wire in _FIELDS})
