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
    ("replay_of", "replayOf"),
)


def encode_meta(meta: JobMeta | None) -> bytes | None:
    if meta is None:
        return None
    data = {wire: getattr(meta, attr) for attr, wire in _FIELDS if getattr(meta, attr) is not None}
    if meta.parents is not None:
        data["parents"] = meta.parents
    return orjson.dumps(data)


def decode_meta(raw: bytes | None) -> JobMeta | None:
    if raw is None:
        return None
    data = orjson.loads(raw)
    parents = data.get("parents")
    return JobMeta(
        **{attr: data.get(wire) for attr, wire in _FIELDS},
        parents=None if parents is None else tuple(parents),
    )
