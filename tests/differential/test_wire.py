"""The compiled wire kernel against its twin: the same bytes out, the same ids in."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from broker._native.wire_py import job_id
from broker.engine import AckReply, SubmitReply
from broker.engine.job import JobMeta
from broker.states import NAMES
from tests.differential.pair import both

compiled, twin_mod = both("wire")
compiled_record, twin_record = both("job_record")
NATIVE, TWIN = compiled.Wire(), twin_mod.Wire()

texts = st.one_of(st.none(), st.text(max_size=12))
metas = st.one_of(
    st.none(),
    st.builds(JobMeta, texts, texts, texts, texts, texts),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
job_fields = st.tuples(
    st.integers(0, 2**62 - 1),  # jid
    st.integers(0, 2),  # tenant
    st.integers(0, 2),  # job type
    st.integers(0, 9),  # priority
    st.integers(1, 100),  # max attempts
    st.integers(0, 2**48 - 1),  # created
    json_values.map(orjson.dumps),  # payload
    metas,
    st.integers(-3, 100),  # attempt (the engine's are never negative; the kernels agree anyway)
)
tenant_names = st.lists(st.text(max_size=10), min_size=3, max_size=3)
type_names = st.lists(st.from_regex(r"[a-z0-9._-]{1,12}", fullmatch=True), min_size=3, max_size=3)
deadline = st.one_of(
    st.integers(0, 253_402_300_799_999),  # up to the end of year 9999
    st.integers(-(10**11), -1),  # before 1970: no engine deadline is, the kernels agree anyway
)
token = st.integers(0, 2**64 - 1)
any_token = st.one_of(token, token, token, st.sampled_from([-1, 2**64]))


def make(module: Any, fields: tuple[Any, ...]) -> Any:
    jid, tenant, jtype, priority, max_attempts, created, payload, meta, attempt = fields
    job = module.Job(jid, tenant, jtype, priority, max_attempts, 30_000, created, 0, payload,
                     meta, 2)  # fmt: skip
    job.attempt = attempt
    return job


def ceiling(attempt: int) -> int:
    return min(3_600_000, 250 << max(0, min(attempt, 40))) if attempt >= 0 else -attempt


def outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except (ValueError, OverflowError) as exc:
        return (type(exc).__name__, None)


@given(
    st.lists(st.tuples(job_fields, any_token, deadline), max_size=20),
    tenant_names,
    type_names,
)
def test_claimed_jobs_are_the_same_bytes(
    grants: list[tuple[Any, int, int]], tenants: list[str], types: list[str]
) -> None:
    tokens = [g[1] for g in grants]
    deadlines = [g[2] for g in grants]
    twin_jobs = [make(twin_record, g[0]) for g in grants]
    out = outcome(lambda: TWIN.claimed(twin_jobs, tokens, deadlines, types, tenants, ceiling))
    native_jobs = [make(compiled_record, g[0]) for g in grants]
    args = (tokens, deadlines, types, tenants, ceiling)
    assert outcome(lambda: NATIVE.claimed(native_jobs, *args)) == out
    # the compiled kernel also takes records that are not its own (a twin engine's)
    assert outcome(lambda: NATIVE.claimed(twin_jobs, *args)) == out
    if out[0] == "ok":
        assert len(orjson.loads(out[1])) == len(grants)


def test_claimed_refuses_columns_of_different_lengths() -> None:
    job = make(twin_record, (1, 0, 0, 5, 5, 0, b"{}", None, 1))
    for wire in (NATIVE, TWIN):
        try:
            wire.claimed([job], [1, 2], [0], ["t"], ["x"], ceiling)
        except ValueError:
            continue
        raise AssertionError(f"{wire!r} took columns of different lengths")


def _id_text(created: int, jid: int) -> str:
    return str(twin_mod.job_id(created, jid))


# mutations of a valid ack result; each must be judged alike by both
MUTATIONS = [
    lambda r: r,
    lambda r: {**r, "jobId": r["jobId"].upper()},
    lambda r: {**r, "leaseId": r["leaseId"].upper()},
    lambda r: {**r, "status": "failed"},
    lambda r: {**r, "status": None},
    lambda r: {**r, "output": {}},
    lambda r: {k: v for k, v in r.items() if k != "leaseId"},
    lambda r: {k: v for k, v in r.items() if k != "jobId"},
    lambda r: {**r, "jobId": r["jobId"][:-1]},
    lambda r: {**r, "jobId": r["jobId"] + "0"},
    lambda r: {**r, "jobId": r["jobId"].replace("-7000-", "-7001-")},
    lambda r: {**r, "jobId": r["jobId"][:19] + "c" + r["jobId"][20:]},
    lambda r: {**r, "jobId": r["jobId"][:8] + "_" + r["jobId"][9:]},
    lambda r: {**r, "jobId": r["jobId"][:30] + "g" + r["jobId"][31:]},
    lambda r: {**r, "jobId": r["jobId"][:30] + "\u00e9" + r["jobId"][31:]},
    lambda r: {**r, "leaseId": r["leaseId"][:15]},
    lambda r: {**r, "leaseId": "\uff10" * 16},  # full-width digits are not hex here
    lambda r: {**r, "leaseId": int(r["leaseId"], 16)},
    lambda r: {**r, "jobId": None},
    lambda r: [r],
    lambda r: "succeeded",
]


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**48 - 1),
            st.integers(0, 2**62 - 1),
            token,
            st.sampled_from(range(len(MUTATIONS))),
        ),
        max_size=8,
    )
)
@example([(0, 0, 0, 0)])
@example([(2**48 - 1, 2**62 - 1, 2**64 - 1, 1)])
def test_plain_successes_are_read_alike(rows: list[tuple[int, int, int, int]]) -> None:
    results = [
        MUTATIONS[m](
            {"jobId": _id_text(created, jid), "leaseId": f"{tok:016x}", "status": "succeeded"}
        )
        for created, jid, tok, m in rows
    ]
    results = orjson.loads(orjson.dumps(results))  # as the ack parser receives them
    got = TWIN.plain_successes(results)
    assert NATIVE.plain_successes(results) == got
    if all(m in (0, 1, 2) for *_, m in rows):  # well formed, in any case: read back exactly
        assert got == ([r[1] for r in rows], [r[2] for r in rows])


@given(st.lists(st.one_of(st.text(max_size=40), st.integers(), st.none()), max_size=4))
def test_arbitrary_ids_are_read_alike(values: list[Any]) -> None:
    results = [{"jobId": v, "leaseId": v, "status": "succeeded"} for v in values]
    assert NATIVE.plain_successes(results) == TWIN.plain_successes(results)


# strings that need escapes, quotes and brackets inside strings, floats orjson reformats
tricky_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab,"\\[]{}:\n\t\x00é😀 '), max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@given(st.lists(tricky_values, max_size=12))
@example([])
@example([[], {}, "", 0])
def test_encode_each_gives_every_value_as_orjson_encodes_it_alone(values: list[Any]) -> None:
    expected = [orjson.dumps(value) for value in values]
    assert TWIN.encode_each(values) == expected
    assert NATIVE.encode_each(values) == expected


def test_encode_each_refuses_what_orjson_refuses() -> None:
    too_deep: Any = []
    for _ in range(300):
        too_deep = [too_deep]
    for wire in (TWIN, NATIVE):
        try:
            wire.encode_each([1, too_deep])
        except orjson.JSONEncodeError:
            continue
        raise AssertionError(f"{wire} encoded a value nested 300 deep")


@given(
    st.lists(
        st.builds(
            SubmitReply,
            st.integers(0, 2**62 - 1),  # jid
            st.integers(0, len(NAMES) - 1),  # state
            st.booleans(),  # deduplicated
            st.integers(0, 2**48 - 1),  # created
        ),
        max_size=20,
    )
)
def test_submission_replies_are_the_same_bytes(replies: list[SubmitReply]) -> None:
    out = TWIN.submitted(replies, NAMES)
    assert NATIVE.submitted(replies, NAMES) == out
    assert [j["jobId"] for j in orjson.loads(out)["jobs"]] == [
        job_id(r.created, r.jid) for r in replies
    ]


@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.builds(job_id, st.integers(0, 2**48 - 1), st.integers(0, 2**62 - 1)),
                st.text(max_size=40),  # as a worker may send it: quotes, escapes, Unicode
            ),
            st.builds(
                AckReply,
                st.sampled_from(["accepted", "conflict", "not_found"]),
                st.integers(0, len(NAMES) - 1),
            ),
        ),
        max_size=20,
    )
)
def test_ack_results_are_the_same_bytes(rows: list[tuple[str, AckReply]]) -> None:
    job_ids = [r[0] for r in rows]
    replies = [r[1] for r in rows]
    out = TWIN.ack_results(job_ids, replies, NAMES)
    assert NATIVE.ack_results(job_ids, replies, NAMES) == out
    assert [r["jobId"] for r in orjson.loads(out)] == job_ids


def test_ack_results_refuse_columns_of_different_lengths() -> None:
    for wire in (TWIN, NATIVE):
        try:
            wire.ack_results(["a"], [], NAMES)
        except ValueError:
            continue
        raise AssertionError(f"{wire} took columns of different lengths")


ROUTES = {b"/api/v1/orchestrator/worker/ack", b"/x"}
request_lines = st.sampled_from([
    b"POST /x HTTP/1.1", b"POST /api/v1/orchestrator/worker/ack HTTP/1.1", b"GET /x HTTP/1.1",
    b"POST /y HTTP/1.1", b"POST /x HTTP/1.0", b"POST  /x HTTP/1.1", b"POST /x HTTP/1.1 ",
    b"POST /x", b"POST", b"post /x HTTP/1.1", b"POST /x\r HTTP/1.1", b"",
])  # fmt: skip
field_names = st.sampled_from([
    b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"Authorization", b"X-Stella-Tenant",
    b"Connection", b"Transfer-Encoding", b"Expect", b"Upgrade", b"Host", b"A" * 70, b"Bad Name",
    b"", b"X-\xff", b"traceparent",
])  # fmt: skip
field_values = st.one_of(
    st.sampled_from(
        [
            b"12",
            b" 12 ",
            b"0",
            b"-1",
            b"1x",
            b"9" * 19,
            b"9" * 20,
            b"close",
            b"Keep-Alive, Close",
            b"\t v \t",
            b"",
            b"a\x00b",
            b"a\x7f",
            b"\x01",
        ]
    ),  # fmt: skip
    st.binary(max_size=12),
)
separators = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\n "])
fields = st.tuples(
    field_names, st.sampled_from([b":", b": ", b" :", b""]), field_values, separators
)


@given(request_lines, st.lists(fields, max_size=6), st.sampled_from([b"\r\n", b"\n", b""]))
@example(b"POST /x HTTP/1.1", [(b"Content-Length", b": ", b"12", b"\r\n")], b"\r\n")
@example(
    b"POST /x HTTP/1.1",
    [(b"Content-Length", b":", b"5", b"\r\n"), (b"Connection", b":", b"close", b"\r\n")],
    b"\r\n",
)
def test_request_heads_are_read_alike(
    line: bytes, lines: list[tuple[bytes, bytes, bytes, bytes]], after_request: bytes
) -> None:
    head = line + after_request + b"".join(n + c + v + sep for n, c, v, sep in lines)
    if head.endswith(b"\r\n"):
        head = head[:-2]  # a head ends before its blank line
    for max_body in (0, 12, 2**63 - 1):
        expected = TWIN.request_head(head, ROUTES, max_body)
        assert NATIVE.request_head(head, ROUTES, max_body) == expected, head


def test_a_plain_head_is_read() -> None:
    head = (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nX-Stella-Tenant: a\r\n"
        b"x-stella-tenant:  b \r\nConnection: close"
    )
    expected = ("/x", 12, {"host": b"h", "content-length": b"12", "x-stella-tenant": b"a",
                           "connection": b"close"}, False)  # fmt: skip
    assert TWIN.request_head(head, ROUTES, 100) == expected
    assert NATIVE.request_head(head, ROUTES, 100) == expected


@pytest.mark.parametrize("control", [b"\x00", b"\x01", b"\x1f", b"\x7f", b"\x0b"])
def test_a_control_character_in_a_value_is_not_read(control: bytes) -> None:
    # left to aiohttp's parser, which refuses it; HTAB and obs-text are fine
    head = b"POST /x HTTP/1.1\r\nContent-Length: 2\r\nX-A: a" + control + b"b"
    assert TWIN.request_head(head, ROUTES, 100) is None
    assert NATIVE.request_head(head, ROUTES, 100) is None
    fine = b"POST /x HTTP/1.1\r\nContent-Length: 2\r\nX-A: a\tb\xff"
    expected = ("/x", 2, {"content-length": b"2", "x-a": b"a\tb\xff"}, True)
    assert TWIN.request_head(fine, ROUTES, 100) == expected
    assert NATIVE.request_head(fine, ROUTES, 100) == expected


def test_ack_results_with_shared_reply_objects() -> None:
    # the engine hands one shared object for every "accepted, succeeded": the kernel
    # reuses its encoding while the object repeats, and must notice when it changes
    done, lost = AckReply("accepted", 3), AckReply("conflict", -1)
    replies = [done, done, lost, done, lost, lost, AckReply("accepted", 2), done]
    job_ids = [f"id-{i}" for i in range(len(replies))]
    assert NATIVE.ack_results(job_ids, replies, NAMES) == TWIN.ack_results(job_ids, replies, NAMES)


@given(
    st.lists(st.integers(0, 70_000), min_size=1, max_size=6),
    st.builds(JobMeta, *[st.text(min_size=0, max_size=600)] * 5),
)
def test_claimed_jobs_past_the_first_buffer_are_the_same_bytes(
    sizes: list[int], meta: JobMeta
) -> None:
    """Payloads and meta far bigger than the buffer a claim starts with."""
    grants = [((i, 0, 0, 5, 5, 1_000 + i, orjson.dumps("x" * size), meta if i % 2 else None, 1),
               i + 1, 5_000) for i, size in enumerate(sizes)]  # fmt: skip
    tokens = [g[1] for g in grants]
    deadlines = [g[2] for g in grants]
    names = (["t0"], ["tenant"])
    twin_jobs = [make(twin_record, g[0]) for g in grants]
    out = TWIN.claimed(twin_jobs, tokens, deadlines, *names, ceiling)
    native_jobs = [make(compiled_record, g[0]) for g in grants]
    assert NATIVE.claimed(native_jobs, tokens, deadlines, *names, ceiling) == out
