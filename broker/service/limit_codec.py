"""Limits <-> the JSON kept in the ledger's ``limits`` table (and shown by the API)."""

from __future__ import annotations

from typing import Any

import orjson

from ..engine.limits import Blackout, BucketState, Quota, Source


def quota_json(quota: Quota) -> dict[str, Any]:
    return {
        "maxActive": quota.max_active,
        "perHour": quota.per_hour,
        "burst": quota.burst,
        "paused": quota.paused,
    }


def quota_from(data: dict[str, Any]) -> Quota:
    return Quota(data.get("maxActive"), data.get("perHour"), data.get("burst"), data["paused"])


def source_json(source: Source) -> dict[str, Any]:
    return {
        "rate": source.rate,
        "burst": source.burst,
        "maxActive": source.max_active,
        "paused": source.paused,
        "throttleRate": source.throttle_rate,
        "throttleUntil": source.throttle_until,
        "blackouts": [{"start": b.start, "end": b.end, "daily": b.daily} for b in source.blackouts],
    }


def source_from(data: dict[str, Any]) -> Source:
    return Source(
        data.get("rate"),
        data.get("burst"),
        data.get("maxActive"),
        data["paused"],
        data.get("throttleRate"),
        data.get("throttleUntil", 0),
        tuple(Blackout(b["start"], b["end"], b["daily"]) for b in data.get("blackouts", ())),
    )


def encode_limit(kind: str, config: object) -> bytes | None:
    if config is None:
        return None
    if kind == "quota":
        assert isinstance(config, Quota)
        return orjson.dumps(quota_json(config))
    if kind == "source":
        assert isinstance(config, Source)
        return orjson.dumps(source_json(config))
    if kind == "bucket":  # a slowed source bucket's adaptive state, kept by the broker
        assert isinstance(config, BucketState)
        return orjson.dumps(
            {"rate": config.rate, "pausedUntil": config.paused_until, "penalties": config.penalties}
        )
    return orjson.dumps({"weight": config})


def decode_limit(kind: str, raw: bytes | None) -> object:
    if raw is None:
        return None
    data = orjson.loads(raw)
    if kind == "quota":
        return quota_from(data)
    if kind == "source":
        return source_from(data)
    if kind == "bucket":
        return BucketState(int(data["rate"]), int(data["pausedUntil"]), int(data["penalties"]))
    return int(data["weight"])
