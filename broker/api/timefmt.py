"""RFC 3339 timestamps (UTC, ``Z``) <-> integer milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_rfc3339(text: str) -> int:
    """Milliseconds since the epoch; ValueError for anything but an RFC 3339 instant."""
    if not isinstance(text, str) or len(text) < 20 or "T" not in text.upper():
        raise ValueError("not an RFC 3339 timestamp")
    stamp = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError("timestamp needs a zone (Z or an offset)")
    return int(stamp.timestamp() * 1000)
