"""Wire forms of the engine's integer ids.

A ``jobId`` is a UUIDv7: the job's creation time in its 48-bit millisecond
field and the engine's job number in the 62-bit ``rand_b`` field (RFC 9562
allows a dedicated counter there). Ids therefore sort by creation time, and
parsing one gives the job number back without any lookup table. A job number
is never reused, so neither is a job id.

A ``leaseId`` is the lease's fencing token as 16 lowercase hex digits.
"""

from __future__ import annotations

import re

_RAND_B = (1 << 62) - 1
_TS = (1 << 48) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
# the form job_id() writes (version 7, variant 10, rand_a zero), in either case
_JOB_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-7000-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z", re.IGNORECASE
)
_LEASE_ID = re.compile(r"[0-9a-f]{16}\Z", re.IGNORECASE)


def job_id(created_ms: int, jid: int) -> str:
    h = f"{((created_ms & _TS) << 80) | _VERSION_AND_VARIANT | (jid & _RAND_B):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_job_id(text: object) -> tuple[int, int] | None:
    """(created ms, job number) of a well-formed id of ours, else None."""
    if type(text) is not str or not _JOB_ID.match(text):
        return None
    value = int(text.replace("-", ""), 16)
    return value >> 80, value & _RAND_B


def lease_id(token: int) -> str:
    return f"{token:016x}"


def parse_lease_id(text: object) -> int | None:
    if type(text) is not str or not _LEASE_ID.match(text):
        return None
    return int(text, 16)
