"""The worker bridge's hot wire forms (pure-Python twin and specification of ``wire.pyx``).

Two things run once per job on every claim and every ack, and so decide the
broker's throughput over HTTP: writing a claimed job out as JSON, and reading a
plain success (``jobId``, ``leaseId``, ``status: "succeeded"``) back in. The
compiled kernel writes the same bytes straight into one buffer and reads the
ids with C hex arithmetic; this twin builds dictionaries and lets orjson encode
them, which is what the contract means.

Ids: a ``jobId`` is a UUIDv7 holding the creation time (48-bit milliseconds)
and the job number (62-bit ``rand_b``); a ``leaseId`` is the fencing token as
16 hex digits (see ``broker.api.ids``, which uses the same forms).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Container, Sequence
from typing import Any

import orjson

_RAND_B = (1 << 62) - 1
_TS = (1 << 48) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
# the form job_id() writes (version 7, variant 10, rand_a zero), in either case
_JOB_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-7000-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z", re.IGNORECASE
)
_LEASE_ID = re.compile(r"[0-9a-f]{16}\Z", re.IGNORECASE)
SIMPLE_RESULT = frozenset({"jobId", "leaseId", "status"})
# header lines, each a name (an RFC 9110 token), a colon and a value free of CR and LF
# a value holds no control character but HTAB (RFC 9110 section 5.5); CR and LF end it
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*\Z")
_DIGITS = re.compile(rb"[0-9]{1,19}\Z")
# fields whose presence sends a request to aiohttp: it alone handles what they ask
_HAND_OFF = frozenset({"transfer-encoding", "expect", "upgrade"})
Head = tuple[str, int, dict[str, bytes], bool]


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


def rfc3339(ms: int) -> str:
    """``2026-11-27T10:00:00.123Z`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(ms // 1000)) + f"{ms % 1000:03d}Z"


def payload_digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


class Wire:
    """Encoder of claimed jobs and decoder of plain-success acks (stateless)."""

    def claimed(
        self,
        jobs: Sequence[Any],
        tokens: Sequence[int],
        deadlines: Sequence[int],
        type_names: Sequence[str],
        tenant_names: Sequence[str],
        ceiling: Callable[[int], int],
    ) -> bytes:
        """The JSON array of claimed jobs, in the contract's form. ``jobs`` are job
        records; ``type_names`` / ``tenant_names`` map their interned ids to names;
        ``ceiling(attempt)`` is the attempt's largest backoff in ms (the retry hint)."""
        out = []
        for job, token, deadline in zip(jobs, tokens, deadlines, strict=True):
            if not 0 <= token < 1 << 64:
                raise ValueError("claimed(): a lease token is not a 64-bit unsigned int")
            meta = job.meta
            out.append(
                {
                    "jobId": job_id(job.created, job.jid),
                    "leaseId": lease_id(token),
                    "leaseUntil": rfc3339(deadline),
                    "attempt": job.attempt,
                    "maxAttempts": job.max_attempts,
                    "jobType": type_names[job.jtype],
                    "priority": job.priority,
                    "tenant": tenant_names[job.tenant],
                    "project": meta.project if meta else None,
                    "correlationId": meta.correlation_id if meta else None,
                    "idempotencyKey": meta.idempotency_key if meta else None,
                    "runId": meta.run_id if meta else None,
                    "payload": orjson.Fragment(job.payload),
                    "payloadDigest": payload_digest(job.payload),
                    "retryHint": {"backoffSeconds": ceiling(job.attempt) / 1000},
                }
            )
        return orjson.dumps(out)

    def plain_successes(self, results: list[Any]) -> tuple[list[int], list[int]] | None:
        """Job numbers and tokens if every result is a plain success (exactly a dict
        with ``status: "succeeded"``, well-formed ids and no other field), else None."""
        jids: list[int] = []
        tokens: list[int] = []
        for result in results:
            if (
                type(result) is not dict
                or result.get("status") != "succeeded"
                or not SIMPLE_RESULT.issuperset(result)
            ):
                return None
            ids = parse_job_id(result.get("jobId"))
            token = parse_lease_id(result.get("leaseId"))
            if ids is None or token is None:
                return None
            jids.append(ids[1])
            tokens.append(token)
        return jids, tokens

    def submitted(self, replies: Sequence[Any], state_names: Sequence[str]) -> bytes:
        """The submission reply's JSON: ``replies`` are the engine's (``jid``,
        ``state``, ``deduplicated``, ``created``), in request order."""
        return orjson.dumps(
            {
                "jobs": [
                    {
                        "jobId": job_id(r.created, r.jid),
                        "state": state_names[r.state],
                        "deduplicated": r.deduplicated,
                    }
                    for r in replies
                ]
            }
        )

    def ack_results(
        self, job_ids: Sequence[Any], replies: Sequence[Any], state_names: Sequence[str]
    ) -> bytes:
        """The ack reply's ``results`` array: each ``jobId`` as the worker sent it
        with the engine's reply (``outcome``, ``state``) to it."""
        out = []
        for job_id_sent, reply in zip(job_ids, replies, strict=True):
            if reply.outcome == "accepted":
                state = state_names[reply.state]
                out.append({"jobId": job_id_sent, "outcome": "accepted", "state": state})
            else:
                out.append({"jobId": job_id_sent, "outcome": reply.outcome})
        return orjson.dumps(out)

    def request_head(self, head: bytes, routes: Container[bytes], max_body: int) -> Head | None:
        """(path, body length, fields, keep-alive) of a plain ``POST`` to one of
        ``routes`` over HTTP/1.1, with one well-formed ``Content-Length`` of at most
        ``max_body`` and none of ``Transfer-Encoding``, ``Expect``, ``Upgrade``;
        None for anything else. ``head`` ends before the blank line. Field names
        are lowercased; of a repeated field the first value counts (as aiohttp's
        ``get`` reads it); values lose surrounding spaces and tabs."""
        line_end = head.find(b"\r\n")
        method, _, rest = head[: line_end if line_end >= 0 else len(head)].partition(b" ")
        target, _, version = rest.partition(b" ")
        if method != b"POST" or version != b"HTTP/1.1" or target not in routes:
            return None
        fields = head[line_end + 2 :] + b"\r\n" if line_end >= 0 else b""
        if not _FIELDS.match(fields):
            return None  # obs-fold, "Name : value", a bare LF or CR
        headers: dict[str, bytes] = {}
        length = -1
        keep_alive = True
        for line in fields.split(b"\r\n")[:-1]:
            name, _, value = line.partition(b":")
            key = name.lower().decode("latin-1")
            value = value.strip(b" \t")
            if key == "content-length":
                if length >= 0 or not _DIGITS.match(value):
                    return None  # a second length or a malformed one
                length = int(value)
            elif key in _HAND_OFF:
                return None
            elif key == "connection":
                keep_alive = b"close" not in value.lower()
            headers.setdefault(key, value)
        if not 0 <= length <= max_body:
            return None
        return target.decode("ascii"), length, headers, keep_alive

    def encode_each(self, values: list[Any]) -> list[bytes]:
        """``orjson.dumps(value)`` of every value, in order: the stored form of a
        submission's payloads."""
        return [orjson.dumps(value) for value in values]
