"""Wire forms of the engine's integer ids.

A ``jobId`` is a UUIDv7: the job's creation time in its 48-bit millisecond
field and the engine's job number in the 62-bit ``rand_b`` field (RFC 9562
allows a dedicated counter there). Ids therefore sort by creation time, and
parsing one gives the job number back without any lookup table. A job number
is never reused, so neither is a job id.

A ``leaseId`` is the lease's fencing token as 16 lowercase hex digits.
"""

from __future__ import annotations

_RAND_B = (1 << 62) - 1
_TS = (1 << 48) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_HEX = frozenset("0123456789abcdefABCDEF")


def job_id(created_ms: int, jid: int) -> str:
    h = f"{((created_ms & _TS) << 80) | _VERSION_AND_VARIANT | (jid & _RAND_B):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_job_id(text: object) -> tuple[int, int] | None:
    """(created ms, job number) of a well-formed id of ours, else None."""
    if not isinstance(text, str) or len(text) != 36:
        return None
    if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    digits = text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:]
    if not _HEX.issuperset(digits):
        return None
    value = int(digits, 16)
    if (value >> 76) & 0xF != 0x7 or (value >> 62) & 0b11 != 0b10 or (value >> 64) & 0xFFF:
        return None
    return value >> 80, value & _RAND_B


def lease_id(token: int) -> str:
    return f"{token:016x}"


def parse_lease_id(text: object) -> int | None:
    if not isinstance(text, str) or len(text) != 16 or not _HEX.issuperset(text):
        return None
    return int(text, 16)
