"""Routes for DAG runs and job replay (``/runs``, ``/jobs/{jobId}/replay|cancel``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import states
from ..engine.runs import RUN_STATUSES
from ..errors import NotFound, ValidationFailed
from ..store.text import storable
from . import run_views
from .ids import job_id, job_in_path, parse_job_id
from .render import json_response
from .requests import MAX_ITEMS, MAX_JOBS_PER_SUBMIT, Problems, job_specs, parse_json

if TYPE_CHECKING:
    from .app import Api

RUN_FIELDS = frozenset({"runToken", "jobs"})
REASON_HEADER = "X-Stella-Operator-Reason"
MAX_REASON = 256


def page_size(request: web.Request) -> int:
    raw = request.query.get("page_size", "50")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 500:  # "²" is a digit
        raise ValidationFailed(
            "page_size must be 1..500",
            details=[{"field": "page_size", "problem": "must be an integer 1..500"}],
        )
    return int(raw)


def operator_reason(request: web.Request, required: bool) -> str | None:
    reason = request.headers.get(REASON_HEADER)
    if reason is None or not reason.strip():
        if required:
            raise ValidationFailed(
                f"this action needs a {REASON_HEADER} header saying why",
                details=[{"field": REASON_HEADER, "problem": "required"}],
            )
        return None
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"{REASON_HEADER} is longer than {MAX_REASON} characters",
            details=[{"field": REASON_HEADER, "problem": "too long"}],
        )
    return audit_text(reason, REASON_HEADER)


def audit_text(value: str, header: str) -> str:
    """A header's value bound for the audit log, if every store can write it: a byte
    that is not UTF-8 arrives as a lone surrogate, which no driver can encode."""
    if not storable(value):
        raise ValidationFailed(
            f"{header} must be UTF-8 text without NUL characters",
            details=[{"field": header, "problem": "not storable text"}],
        )
    return value


def parse_run(body: Any, max_payload: int) -> tuple[str | None, list[Any]]:
    p = Problems()
    if type(body) is not dict or not RUN_FIELDS.issuperset(body):
        p.add("", f"must be an object with fields {sorted(RUN_FIELDS)}")
        p.raise_if_any("invalid run")
    token = body.get("runToken")
    if token is not None and (
        type(token) is not str or not 0 < len(token) <= 128 or not storable(token)
    ):
        p.add("runToken", "must be a string of 1..128 characters, no NUL")
    jobs = body.get("jobs")
    if type(jobs) is not list or not 0 < len(jobs) <= MAX_JOBS_PER_SUBMIT:
        p.add("jobs", f"must be a list of 1..{MAX_JOBS_PER_SUBMIT} jobs")
        p.raise_if_any("invalid run")
    specs = job_specs(jobs, max_payload, p)
    p.raise_if_any("invalid run: it was refused whole")
    return token, specs


def _job_ids(body: Any) -> list[tuple[int, int]]:
    ids = body.get("jobIds") if type(body) is dict and set(body) == {"jobIds"} else None
    parsed = [parse_job_id(i) for i in ids] if type(ids) is list else []
    if not 0 < len(parsed) <= MAX_ITEMS or any(p is None for p in parsed):
        raise ValidationFailed(
            'the body must be {"jobIds": [...]} with 1..1000 job ids',
            details=[{"field": "jobIds", "problem": "must be a list of 1..1000 job ids"}],
        )
    return parsed  # type: ignore[return-value]


class RunRoutes:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.runs = api.broker.runs

    def register(self, app: web.Application, base: str) -> None:
        app.router.add_post(f"{base}/runs", self.create)
        app.router.add_get(f"{base}/runs", self.list, allow_head=False)
        app.router.add_get(f"{base}/runs/{{runId}}", self.summary, allow_head=False)
        app.router.add_get(f"{base}/runs/{{runId}}/dag", self.dag, allow_head=False)
        app.router.add_get(f"{base}/runs/{{runId}}/timeline", self.timeline, allow_head=False)
        app.router.add_post(f"{base}/runs/{{runId}}/cancel", self.cancel)
        app.router.add_post(f"{base}/runs/{{runId}}/replay", self.replay)
        app.router.add_post(f"{base}/jobs/{{jobId}}/replay", self.replay_job)
        app.router.add_post(f"{base}/jobs/{{jobId}}/cancel", self.cancel_job)

    # -- commands -------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        api = self.api
        tenant = api.principal(request).require("orch:operate")
        body = await api.body(request)

        async def run() -> web.Response:
            token, specs = parse_run(parse_json(body), api.settings.max_payload_bytes)
            reply = await self.runs.create(tenant, token, specs)
            if reply.deduplicated:
                found = await self.runs.read(tenant, reply.run_id)
                jobs = [
                    {
                        "key": run_views.meta_of(j).get("key"),
                        "jobId": job_id(j.job.created, j.job.jid),
                        "state": states.NAMES[j.job.state],
                    }
                    for j in found.jobs
                ]
            else:
                jobs = [
                    {
                        "key": spec.meta.key,
                        "jobId": job_id(r.created, r.jid),
                        "state": states.NAMES[r.state],
                    }
                    for spec, r in zip(specs, reply.jobs, strict=True)
                ]
            out = {"runId": reply.run_id, "deduplicated": reply.deduplicated, "jobs": jobs}
            return json_response(out, 200 if reply.deduplicated else 201)

        return await api.idempotent(request, tenant, body, run)

    async def cancel(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:operate")
        run_id = request.match_info["runId"]
        canceled = await self.runs.cancel(tenant, run_id)
        return json_response({"runId": run_id, "canceled": canceled})

    async def replay(self, request: web.Request) -> web.Response:
        principal = self.api.principal(request)
        tenant = principal.require("orch:operate")
        reason = operator_reason(request, required=True)
        run_id = request.match_info["runId"]
        ids = _job_ids(parse_json(await self.api.body(request)))
        jids = await self.runs.replay(
            tenant, run_id, [jid for _, jid in ids], principal.subject, reason or ""
        )
        found = await self.runs.read(tenant, run_id)
        public = {j.job.jid: job_id(j.job.created, j.job.jid) for j in found.jobs}
        return json_response(
            {"runId": run_id, "status": found.run.status, "replayed": [public[j] for j in jids]}
        )

    async def replay_job(self, request: web.Request) -> web.Response:
        principal = self.api.principal(request)
        tenant = principal.require("orch:operate")
        reason = operator_reason(request, required=False)
        text, created, jid = job_in_path(request)
        reply = await self.runs.clone(tenant, (created, jid), text, principal.subject, reason)
        body = {
            "jobId": job_id(reply.created, reply.jid),
            "state": states.NAMES[reply.state],
            "replayOf": text,
        }
        return json_response(body, 201)

    async def cancel_job(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:operate")
        text, created, jid = job_in_path(request)
        job = self.api.broker.engine.jobs.get(jid)
        if job is not None and job.created != created:
            raise NotFound("no such job")  # the number of a live job, another's timestamp
        state = await self.api.broker.cancel(tenant, jid)
        return json_response({"jobId": text, "state": states.NAMES[state]})

    # -- reads ----------------------------------------------------------------------------
    async def list(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:read", "orch:operate")
        status = request.query.get("status")
        if status is not None and status not in RUN_STATUSES:
            raise ValidationFailed(
                f"status must be one of {', '.join(RUN_STATUSES)}",
                details=[{"field": "status", "problem": "unknown status"}],
            )
        limit = page_size(request)
        cursor = run_views.decode_cursor(request.query.get("page_token"), tuple)
        rows = await self.runs.page(tenant, status, cursor, limit + 1)
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = run_views.encode_cursor([rows[-1].created, rows[-1].run_id])
        return json_response({"runs": [run_views.run_row(r) for r in rows], "nextPageToken": token})

    async def summary(self, request: web.Request) -> web.Response:
        found = await self._read(request)
        return json_response(run_views.summary(found))

    async def dag(self, request: web.Request) -> web.Response:
        return json_response(run_views.dag(await self._read(request)))

    async def timeline(self, request: web.Request) -> web.Response:
        limit = page_size(request)
        after = run_views.decode_cursor(request.query.get("page_token"), int) or 0
        return json_response(run_views.timeline(await self._read(request), after, limit))

    async def _read(self, request: web.Request) -> Any:
        tenant = self.api.principal(request).require("orch:read", "orch:operate")
        return await self.runs.read(tenant, request.match_info["runId"])
