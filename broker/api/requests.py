"""Request bodies -> engine inputs, with every problem reported at once.

Each parser checks types, ranges and unknown fields strictly and raises
``ValidationFailed`` whose ``details`` list every ``{field, problem}`` found;
nothing reaches the engine until a whole body is valid. ``bool`` is never
accepted where a number is expected.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from .._native import Wire
from ..engine import AckItem, JobMeta, JobSpec
from ..engine.commands import ACK_STATUSES
from ..errors import PayloadTooLarge, ValidationFailed
from ..store.text import storable
from .ids import parse_job_id, parse_lease_id
from .timefmt import parse_rfc3339

_WIRE = Wire()  # parses plain-success acks (the hot path) in one pass

JOB_TYPE = re.compile(r"[a-z0-9._-]{1,128}\Z")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
MAX_JOBS_PER_SUBMIT = 10_000
MAX_ITEMS = 1_000
THROTTLED_CLASS = "http_429"  # an upstream "too many requests": slows the job's source

SUBMIT_FIELDS = frozenset(
    {
        "jobType",
        "payload",
        "priority",
        "sourceHost",
        "idempotencyKey",
        "notBefore",
        "maxAttempts",
        "leaseSeconds",
        "correlationId",
        "project",
        "runId",
        "key",
        "dependsOn",
    }
)
CLAIM_FIELDS = frozenset({"workerId", "jobTypes", "maxJobs", "leaseSeconds", "waitMs"})
NESTED_CLAIM_FIELDS = CLAIM_FIELDS - {"workerId"}
HEARTBEAT_FIELDS = frozenset({"workerId", "leases"})
LEASE_FIELDS = frozenset({"jobId", "leaseId", "extendSeconds", "progress"})
ACK_FIELDS = frozenset({"workerId", "results", "claim"})
RESULT_FIELDS = frozenset({"jobId", "leaseId", "status", "error", "artifacts", "output"})
ERROR_FIELDS = frozenset({"class", "message", "retryable", "retryAfterSeconds"})
ARTIFACT_FIELDS = frozenset({"uri", "digest", "mime"})


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        if len(self.items) < 100:  # enough to fix a body; bounded for absurd ones
            self.items.append({"field": field, "problem": problem})

    def raise_if_any(self, message: str) -> None:
        if self.items:
            raise ValidationFailed(message, details=self.items)


def parse_json(body: bytes) -> Any:
    if not body:
        raise ValidationFailed("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"malformed JSON: {exc}") from None


def _object(value: Any, where: str, allowed: frozenset[str], problems: Problems) -> bool:
    if not isinstance(value, dict):
        problems.add(where or "body", "must be a JSON object")
        return False
    if allowed.issuperset(value):
        return True  # the usual case, without building the set of unknown names
    for name in value.keys() - allowed:
        problems.add(f"{where}.{name}" if where else name, "unknown field")
    return True


def _int(value: Any, field: str, low: int, high: int, problems: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            problems.add(field, f"must be an integer {low}..{high}")
            return None
    if not low <= value <= high:
        problems.add(field, f"must be {low}..{high}")
        return None
    return int(value)


def _str(value: Any, field: str, max_len: int, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value:
        problems.add(field, "must be a non-empty string")
        return None
    if len(value) > max_len:
        problems.add(field, f"must be at most {max_len} characters")
        return None
    if not storable(value):  # refused here, never left for a flush to fail on
        problems.add(field, "must not contain NUL characters or unpaired surrogates")
        return None
    return value


def _encoded(value: Any, field: str, problems: Problems, levels: int = 254) -> bytes | None:
    """``value`` as stored JSON; orjson reads 1,024 levels but writes only 254
    (``levels``: what is left of them to the part of ``value`` named ``field``)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        problems.add(field, f"nested too deeply (at most {levels} levels)")
        return None


def _opt_str(obj: dict[str, Any], name: str, where: str, max_len: int, p: Problems) -> str | None:
    value = obj.get(name)
    return None if value is None else _str(value, f"{where}.{name}", max_len, p)


def _job_types(value: Any, field: str, problems: Problems) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= 64:
        problems.add(field, "must be a list of 1..64 job types")
        return []
    for i, jtype in enumerate(value):
        if not valid_job_type(jtype):
            problems.add(f"{field}[{i}]", "must match [a-z0-9._-]{1,128}")
    return value


# -- submission ---------------------------------------------------------------------
def parse_submit(body: Any, now_ms: int, max_payload: int) -> list[JobSpec]:
    problems = Problems()
    if not _object(body, "", frozenset({"jobs"}), problems):
        problems.raise_if_any("invalid submission")
    jobs = body.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        problems.add("jobs", "must be a non-empty list")
        problems.raise_if_any("invalid submission")
    if len(jobs) > MAX_JOBS_PER_SUBMIT:
        problems.add("jobs", f"at most {MAX_JOBS_PER_SUBMIT} jobs per request")
        problems.raise_if_any("invalid submission")
    specs = job_specs(jobs, max_payload, problems)
    problems.raise_if_any("invalid submission: the batch was refused whole")
    return specs  # type: ignore[return-value]


def job_specs(jobs: list[Any], max_payload: int, p: Problems) -> list[JobSpec | None]:
    """Every job of a submission, their payloads encoded in one pass."""
    values = [job.get("payload") if type(job) is dict else None for job in jobs]
    try:
        payloads: list[bytes | None] = list(_WIRE.encode_each(values))
    except orjson.JSONEncodeError:  # one is nested too deeply: job_spec names it
        payloads = [None] * len(jobs)
    return [job_spec(job, i, max_payload, p, payloads[i]) for i, job in enumerate(jobs)]


_KNOWN_TYPES: set[str] = set()  # job types already matched: a set lookup instead of a regex


def valid_job_type(name: object) -> bool:
    if type(name) is not str:
        return False
    if name in _KNOWN_TYPES:
        return True
    if JOB_TYPE.match(name) is None:
        return False
    if len(_KNOWN_TYPES) < 65_536:  # bounded against a stream of made-up names
        _KNOWN_TYPES.add(name)
    return True


META_FIELDS = frozenset(
    {"project", "correlationId", "idempotencyKey", "sourceHost", "runId", "key"}
)


def job_spec(
    job: Any, index: int, max_payload: int, p: Problems, payload: bytes | None = None
) -> JobSpec | None:
    """One job of a submission; field names in problems are built only when needed.
    ``payload`` is the job's payload already encoded, if it was."""
    if type(job) is not dict or not SUBMIT_FIELDS.issuperset(job):
        _object(job, f"jobs[{index}]", SUBMIT_FIELDS, p)
        return None
    jtype = job.get("jobType")
    ok = valid_job_type(jtype)
    if not ok:
        p.add(f"jobs[{index}].jobType", "required; must match [a-z0-9._-]{1,128}")
    if "payload" not in job:
        p.add(f"jobs[{index}].payload", "required")
        payload = b"null"
    else:
        if payload is None:
            payload = _encoded(job["payload"], f"jobs[{index}].payload", p) or b"null"
        if len(payload) > max_payload:
            raise PayloadTooLarge(
                f"jobs[{index}].payload is {len(payload)} bytes encoded; the limit is {max_payload}"
            )
    priority = job.get("priority", 5)
    if type(priority) is not int or not 0 <= priority <= 9:
        priority = _int(priority, f"jobs[{index}].priority", 0, 9, p)
        ok = ok and priority is not None
    max_attempts = job.get("maxAttempts")
    if max_attempts is not None:
        max_attempts = _int(max_attempts, f"jobs[{index}].maxAttempts", 1, 100, p)
    lease = job.get("leaseSeconds")
    if lease is not None:
        lease = _int(lease, f"jobs[{index}].leaseSeconds", 1, 3600, p)
    not_before = _not_before(job.get("notBefore"), index, p)
    depends_on = _depends_on(job.get("dependsOn"), index, p)
    meta = _job_meta(job, index, p) if not META_FIELDS.isdisjoint(job) else None
    if not ok:
        return None
    return JobSpec(
        jtype,  # type: ignore[arg-type]
        payload,
        priority,
        max_attempts,
        lease * 1000 if lease else None,
        not_before,
        meta,
        depends_on,
    )


_NO_META = JobMeta()
MAX_PARENTS = 1_000


def _depends_on(value: Any, index: int, p: Problems) -> tuple[str, ...]:
    """Run-local keys of the jobs this one waits for."""
    if value is None:
        return ()
    if (
        type(value) is not list
        or len(value) > MAX_PARENTS
        or not all(type(k) is str and 0 < len(k) <= 128 for k in value)
    ):
        p.add(
            f"jobs[{index}].dependsOn",
            f"must be a list of at most {MAX_PARENTS} keys (strings of 1..128 characters)",
        )
        return ()
    return tuple(value)


def _not_before(value: Any, index: int, p: Problems) -> int:
    if value is None:
        return 0
    try:
        return parse_rfc3339(value)
    except (ValueError, TypeError, OverflowError):
        p.add(
            f"jobs[{index}].notBefore", "must be an RFC 3339 timestamp, e.g. 2026-11-27T10:00:00Z"
        )
        return 0


def _job_meta(job: dict[str, Any], index: int, p: Problems) -> JobMeta | None:
    where = f"jobs[{index}]"
    meta = JobMeta(
        project=_opt_str(job, "project", where, 128, p),
        correlation_id=_opt_str(job, "correlationId", where, 256, p),
        idempotency_key=_opt_str(job, "idempotencyKey", where, 256, p),
        source_host=_opt_str(job, "sourceHost", where, 253, p),
        run_id=_opt_str(job, "runId", where, 128, p),
        key=_opt_str(job, "key", where, 128, p),
    )
    return None if meta == _NO_META else meta


# -- worker bridge ---------------------------------------------------------------------
# the parsed requests are NamedTuples: made per request on the worker routes, where a
# frozen dataclass's __init__ (object.__setattr__ per field) cost three times as much
class ClaimRequest(NamedTuple):
    worker: str
    job_types: list[str]
    max_jobs: int
    lease_ms: int | None
    wait_ms: int


def parse_claim(body: Any, worker: str | None = None, where: str = "") -> ClaimRequest:
    """A claim body, or the nested ``claim`` of an ack (then ``worker`` is the ack's)."""
    p = Problems()
    allowed = CLAIM_FIELDS if worker is None else NESTED_CLAIM_FIELDS
    if not _object(body, where, allowed, p):
        p.raise_if_any("invalid claim")
    prefix = f"{where}." if where else ""
    if worker is None:
        worker = _str(body.get("workerId"), "workerId", 128, p)
    types = _job_types(body.get("jobTypes"), f"{prefix}jobTypes", p)
    max_jobs = _int(body.get("maxJobs", 1), f"{prefix}maxJobs", 1, MAX_ITEMS, p)
    lease = body.get("leaseSeconds")
    if lease is not None:
        lease = _int(lease, f"{prefix}leaseSeconds", 1, 3600, p)
    wait_ms = _int(body.get("waitMs", 0), f"{prefix}waitMs", 0, 30_000, p)
    p.raise_if_any("invalid claim")
    return ClaimRequest(
        worker or "", types, max_jobs or 1, lease * 1000 if lease else None, wait_ms or 0
    )


class HeartbeatRequest(NamedTuple):
    worker: str
    jids: list[int]
    tokens: list[int]
    extend_ms: list[int]
    progress: list[bytes | None]
    job_ids: list[str]


def parse_heartbeat(body: Any, default_extend_s: int) -> HeartbeatRequest:
    p = Problems()
    if not _object(body, "", HEARTBEAT_FIELDS, p):
        p.raise_if_any("invalid heartbeat")
    worker = _str(body.get("workerId"), "workerId", 128, p)
    leases = body.get("leases")
    if not isinstance(leases, list) or not 1 <= len(leases) <= MAX_ITEMS:
        p.add("leases", f"must be a list of 1..{MAX_ITEMS} leases")
        p.raise_if_any("invalid heartbeat")
    jids, tokens, extend, progress, job_ids = [], [], [], [], []
    for i, lease in enumerate(leases):
        where = f"leases[{i}]"
        if not _object(lease, where, LEASE_FIELDS, p):
            continue
        jid, token = _job_and_lease(lease, where, p)
        seconds = _int(
            lease.get("extendSeconds", default_extend_s), f"{where}.extendSeconds", 1, 3600, p
        )
        raw = lease.get("progress")
        if raw is not None and not isinstance(raw, dict):
            p.add(f"{where}.progress", "must be an object")
        elif raw is not None:
            pct = raw.get("pct")
            if pct is not None and (
                isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100
            ):
                p.add(f"{where}.progress.pct", "must be a number 0..100")
        jids.append(jid)
        tokens.append(token)
        extend.append((seconds or 1) * 1000)
        progress.append(None if raw is None else _encoded(raw, f"{where}.progress", p))
        job_ids.append(lease.get("jobId"))
    p.raise_if_any("invalid heartbeat")
    return HeartbeatRequest(worker or "", jids, tokens, extend, progress, job_ids)


def _job_and_lease(obj: dict[str, Any], where: str, p: Problems) -> tuple[int, int]:
    """Job number and token; an id that is not ours maps to job 0 (which never exists)."""
    job_id = obj.get("jobId")
    if not isinstance(job_id, str) or not job_id:
        p.add(f"{where}.jobId", "required string")
    parsed = parse_job_id(job_id)
    lease = obj.get("leaseId")
    if not isinstance(lease, str) or not lease:
        p.add(f"{where}.leaseId", "required string")
    token = parse_lease_id(lease)
    return (parsed[1] if parsed else 0), (token if token is not None else 0)


class AckRequest(NamedTuple):
    """A parsed ack. When every result is a plain success (jobId, leaseId and
    status ``succeeded`` only, ids well formed), ``successes`` holds them as
    (job numbers, tokens) columns and ``items`` is empty: the hot path."""

    worker: str
    items: list[AckItem]
    job_ids: list[str]
    claim: ClaimRequest | None
    successes: tuple[list[int], list[int]] | None = None


def parse_ack(body: Any) -> AckRequest:
    p = Problems()
    if not _object(body, "", ACK_FIELDS, p):
        p.raise_if_any("invalid ack")
    worker = _str(body.get("workerId"), "workerId", 128, p)
    results = body.get("results")
    if not isinstance(results, list) or len(results) > MAX_ITEMS:
        p.add("results", f"must be a list of at most {MAX_ITEMS} results")
        p.raise_if_any("invalid ack")
    successes = _WIRE.plain_successes(results) if results else None
    claim = _nested_claim(body, worker, p)
    if successes is not None:
        p.raise_if_any("invalid ack")
        return AckRequest(worker or "", [], [r["jobId"] for r in results], claim, successes)
    items: list[AckItem] = []
    job_ids: list[str] = []
    for i, result in enumerate(results):
        where = f"results[{i}]"
        if not _object(result, where, RESULT_FIELDS, p):
            continue
        item = _ack_item(result, where, p)
        if item is not None:
            items.append(item)
            job_ids.append(result.get("jobId"))
    if not results and claim is None:
        p.add("results", "must not be empty unless a claim is given")
    p.raise_if_any("invalid ack")
    return AckRequest(worker or "", items, job_ids, claim)


def _nested_claim(body: dict[str, Any], worker: str | None, p: Problems) -> ClaimRequest | None:
    if body.get("claim") is None:
        return None
    try:
        return parse_claim(body["claim"], worker or "", "claim")
    except ValidationFailed as exc:
        for detail in exc.details or []:
            p.add(detail["field"], detail["problem"])
        return None


def _ack_item(result: dict[str, Any], where: str, p: Problems) -> AckItem | None:
    jid, token = _job_and_lease(result, where, p)
    status = result.get("status")
    if type(status) is not str or status not in ACK_STATUSES:
        p.add(f"{where}.status", "must be succeeded, failed, canceled or timed_out")
    retryable, retry_after_ms, error, throttled = True, 0, None, False
    raw_error = result.get("error")
    if raw_error is not None and _object(raw_error, f"{where}.error", ERROR_FIELDS, p):
        retryable, retry_after_ms, throttled = _ack_error(raw_error, f"{where}.error", p)
        error = _encoded(raw_error, f"{where}.error", p)
    artifacts = result.get("artifacts")
    if artifacts is not None:
        _check_artifacts(artifacts, f"{where}.artifacts", p)
    output = None
    if "output" in result or artifacts:
        kept = {"output": result.get("output"), "artifacts": artifacts or []}
        output = _encoded(kept, f"{where}.output", p, levels=253)  # inside ``kept``
    if type(status) is not str or status not in ACK_STATUSES:
        return None
    return AckItem(jid, token, status, retryable, retry_after_ms, error, output, throttled)


def _ack_error(raw: dict[str, Any], where: str, p: Problems) -> tuple[bool, int, bool]:
    """(retryable, retry after ms, throttled) of a worker's error object."""
    retryable, retry_after_ms = True, 0
    if "class" in raw:
        _str(raw["class"], f"{where}.class", 128, p)
    if "message" in raw and not isinstance(raw["message"], str):
        p.add(f"{where}.message", "must be a string")
    if "retryable" in raw:
        if not isinstance(raw["retryable"], bool):
            p.add(f"{where}.retryable", "must be true or false")
        else:
            retryable = raw["retryable"]
    after = raw.get("retryAfterSeconds")
    if after is not None:
        if (
            isinstance(after, bool)
            or not isinstance(after, int | float)
            or not 0 <= after <= 86_400
        ):
            p.add(f"{where}.retryAfterSeconds", "must be a number 0..86400")
        else:
            retry_after_ms = int(after * 1000)
    return retryable, retry_after_ms, raw.get("class") == THROTTLED_CLASS


def _check_artifacts(artifacts: Any, where: str, p: Problems) -> None:
    if not isinstance(artifacts, list) or len(artifacts) > 1_000:
        p.add(where, "must be a list of at most 1000 artifacts")
        return
    for i, artifact in enumerate(artifacts):
        at = f"{where}[{i}]"
        if not _object(artifact, at, ARTIFACT_FIELDS, p):
            continue
        _str(artifact.get("uri"), f"{at}.uri", 2048, p)
        digest = artifact.get("digest")
        if not isinstance(digest, str) or not DIGEST.match(digest):
            p.add(f"{at}.digest", "must be sha256:<64 lowercase hex>")
        if "mime" in artifact:
            _str(artifact["mime"], f"{at}.mime", 255, p)
