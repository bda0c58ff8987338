"""Wire forms of the engine's integer ids.

A ``jobId`` is a UUIDv7: the job's creation time in its 48-bit millisecond
field and the engine's job number in the 62-bit ``rand_b`` field (RFC 9562
allows a dedicated counter there). Ids therefore sort by creation time, and
parsing one gives the job number back without any lookup table. A job number
is never reused, so neither is a job id.

A ``leaseId`` is the lease's fencing token as 16 lowercase hex digits.
"""

from __future__ import annotations

from aiohttp import web

# the forms are the wire kernel's, whose twin is their specification
from .._native.wire_py import job_id as job_id
from .._native.wire_py import lease_id as lease_id
from .._native.wire_py import parse_job_id as parse_job_id
from .._native.wire_py import parse_lease_id as parse_lease_id
from ..errors import NotFound


def job_in_path(request: web.Request) -> tuple[str, int, int]:
    """The route's ``{jobId}`` as sent, with its creation time and job number; a
    malformed id is 404 ``NOT_FOUND``, as an unknown one is."""
    text = request.match_info["jobId"]
    parsed = parse_job_id(text)
    if parsed is None:
        raise NotFound("no such job")
    return text, parsed[0], parsed[1]
