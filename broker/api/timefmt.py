"""RFC 3339 timestamps (UTC, ``Z``) <-> integer milliseconds."""

from __future__ import annotations

import re
import time
from datetime import datetime

_last_second = -1
_last_prefix = ""


def rfc3339(ms: int) -> str:
    """``2026-11-27T10:00:00.123Z``; the date-and-second part is cached, because
    consecutive calls (lease deadlines in one busy second) mostly share it."""
    global _last_second, _last_prefix
    second = ms // 1000
    if second != _last_second:
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _last_second = second
    return f"{_last_prefix}{ms % 1000:03d}Z"


# RFC 3339 section 5.6 date-time: a full date, a full time and a zone, nothing else
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})\Z"
)
_MIN_MS = 0  # 1970-01-01T00:00:00Z
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def parse_rfc3339(text: str) -> int:
    """Milliseconds since the epoch; ValueError for anything but an RFC 3339 instant
    between 1970 and the end of year 9999."""
    if type(text) is not str or not _RFC3339.match(text):
        raise ValueError("not an RFC 3339 timestamp")
    stamp = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    ms = int(stamp.timestamp() * 1000)
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValueError("timestamp out of range (1970 .. 9999)")
    return ms
