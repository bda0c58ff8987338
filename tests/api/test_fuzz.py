"""Mutated request bodies against every body parser: a refusal is a client error, never a crash.

The parsers run before anything reaches the broker, so any exception other
than the broker's own 4xx errors becomes a 500 for bad input. Each body starts
from a valid one; every field is independently kept, dropped, or replaced by
arbitrary JSON (nested objects are mutated the same way).
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from broker.api.requests import parse_ack, parse_claim, parse_heartbeat, parse_submit
from broker.errors import HTTP_STATUS, OrchestratorError

from .conftest import NOW_MS

MISSING = object()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text("ab\u00e9 ", max_size=3),
    st.sampled_from(
        [
            "scan",
            "succeeded",
            "failed",
            "2027-01-15T10:00:00Z",
            "sha256:" + "a" * 64,
            "0190a0b0-0000-7000-8000-000000000001",
            "00000000000000ff",
            "9" * 40,
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", max_size=2), inner, max_size=3)
    ),
    max_leaves=5,
)


def field(valid: Any, *more: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value (a constant or a strategy); else no value at all, arbitrary
    JSON, or one of ``more``."""
    good = valid if isinstance(valid, st.SearchStrategy) else st.just(valid)
    bad = st.one_of(st.just(MISSING), json_values, *more)
    return st.integers(0, 9).flatmap(lambda n: good if n < 5 else bad)


def request_body(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A request body: mostly a mutated valid one, sometimes any JSON at all."""
    return st.one_of(json_values, valid, valid, valid)


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An object of these fields (each possibly dropped), sometimes with an unknown one."""
    extra = st.dictionaries(st.sampled_from(["zz", "jobs", "status"]), json_values, max_size=1)

    def build(parts: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        given_fields, unknown = parts
        out = {k: v for k, v in given_fields.items() if v is not MISSING}
        return {**unknown, **out}

    return st.tuples(st.fixed_dictionaries(fields), extra).map(build)


JOB_ID = "0190a0b0-0000-7000-8000-000000000001"
STAMPS = st.sampled_from(
    [
        "2027-01-15T10:00:00Z",
        "1969-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2027-02-30T10:00:00Z",
        "2027-01-15T10:00:00+25:00",
        "Z" * 25,
    ]
)
claim_fields = dict(
    jobTypes=field(["scan"], st.lists(scalars, max_size=3)),
    maxJobs=field(5, st.integers(-5, 2000)),
    leaseSeconds=field(30, st.integers(-5, 4000)),
    waitMs=field(0, st.integers(-5, 40_000)),
)
claims = request_body(obj(workerId=field("w"), **claim_fields))
job = obj(
    jobType=field("scan"),
    payload=field({"a": 1}),
    priority=field(5, st.integers(-2, 12)),
    sourceHost=field("h"),
    idempotencyKey=field("k"),
    notBefore=field(MISSING, STAMPS),
    maxAttempts=field(3, st.integers(-2, 120)),
    leaseSeconds=field(30, st.integers(-2, 4000)),
    correlationId=field("c"),
    project=field("p"),
    runId=field("r"),
    key=field("f"),
    dependsOn=field(MISSING, st.lists(scalars, max_size=2)),
)
submits = request_body(obj(jobs=field(st.lists(job, min_size=1, max_size=2))))
lease = obj(
    jobId=field(JOB_ID),
    leaseId=field("00000000000000ff"),
    extendSeconds=field(30, st.integers(-2, 4000)),
    progress=field(MISSING, obj(pct=field(40), message=field("m"))),
)
heartbeats = request_body(
    obj(workerId=field("w"), leases=field(st.lists(lease, min_size=1, max_size=3)))
)
error = obj(
    **{
        "class": field("http_429"),
        "message": field("m"),
        "retryable": field(True),
        "retryAfterSeconds": field(20, st.floats(-10, 1e6)),
    }
)
artifact = obj(uri=field("cas://a"), digest=field("sha256:" + "a" * 64), mime=field("text/plain"))
result = obj(
    jobId=field(JOB_ID),
    leaseId=field("00000000000000ff"),
    status=field("failed", st.sampled_from(["succeeded", "canceled", "timed_out"])),
    error=field(MISSING, error),
    artifacts=field(MISSING, st.lists(artifact, max_size=2)),
    output=field(MISSING),
)
acks = request_body(
    obj(
        workerId=field("w"),
        results=field(st.lists(result, min_size=1, max_size=3)),
        claim=field(MISSING, obj(**claim_fields)),
    )
)

# no shrinking phase, so that a broken parser still fails within a second
fuzz = settings(
    max_examples=50, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate)
)


def client_error_or_ok(parse: Any, body: Any) -> None:
    body = orjson.loads(orjson.dumps(body))  # exactly what a request body decodes to
    try:
        parse(body)
    except OrchestratorError as exc:
        assert 400 <= HTTP_STATUS[exc.code] < 500, exc.code


@fuzz
@given(submits)
def test_submit_parser(body: Any) -> None:
    client_error_or_ok(lambda b: parse_submit(b, NOW_MS, 1024), body)


@fuzz
@given(claims)
def test_claim_parser(body: Any) -> None:
    client_error_or_ok(parse_claim, body)


@fuzz
@given(heartbeats)
def test_heartbeat_parser(body: Any) -> None:
    client_error_or_ok(lambda b: parse_heartbeat(b, 30), body)


@fuzz
@given(acks)
def test_ack_parser(body: Any) -> None:
    client_error_or_ok(parse_ack, body)
