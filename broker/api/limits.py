"""Routes for flow control: quotas, sources (rate, throttle, blackouts, pause),
fairness weight, the audit log and a job's manual retry.

Every change needs scope ``orch:quota`` and an ``X-Stella-Operator-Reason``
header (``X-Stella-Operator-Ticket`` is recorded when given); both go into the
audit log with the token's subject and the time. A change is answered once it
is durable, and is in force from that moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import states
from ..engine.limits import Blackout, Quota, Source
from ..errors import NotFound, ValidationFailed
from ..service.broker import Audit
from ..service.limit_codec import quota_json, source_json
from ..store.text import storable
from .ids import job_id, job_in_path
from .render import json_response
from .requests import JOB_TYPE, Problems, parse_json
from .runs import audit_text, operator_reason, page_size
from .timefmt import parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from .app import Api

TICKET_HEADER = "X-Stella-Operator-Ticket"
MAX_TICKET = 128
QUOTA_FIELDS = frozenset({"maxActive", "perHour", "burst", "paused"})
SOURCE_FIELDS = frozenset({"rate", "burst", "maxActive", "paused", "blackouts"})
BLACKOUT_FIELDS = frozenset({"start", "end", "daily"})
HOST_MAX = 253
MAX_RATE = 1_000_000.0
MAX_COUNT = 1_000_000_000


def _ticket(request: web.Request) -> str | None:
    ticket = request.headers.get(TICKET_HEADER)
    if ticket is not None and len(ticket) > MAX_TICKET:
        raise ValidationFailed(
            f"{TICKET_HEADER} is longer than {MAX_TICKET} characters",
            details=[{"field": TICKET_HEADER, "problem": "too long"}],
        )
    return audit_text(ticket, TICKET_HEADER) if ticket else None


def _count(body: dict[str, Any], name: str, p: Problems, low: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= MAX_COUNT:
        p.add(name, f"must be null or an integer {low}..{MAX_COUNT}")
        return None
    return value


def _rate(value: Any, name: str, p: Problems) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_RATE:
        p.add(name, f"must be null or a number of tokens per second in (0, {MAX_RATE:g}]")
        return None
    return float(value)


def _paused(body: dict[str, Any], p: Problems) -> bool:
    paused = body.get("paused", False)
    if type(paused) is not bool:
        p.add("paused", "must be true or false")
        return False
    return paused


def _object(body: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if type(body) is not dict or not allowed.issuperset(body):
        raise ValidationFailed(
            f"{what} must be an object with fields among {sorted(allowed)}",
            details=[{"field": "", "problem": f"unknown field or not an object ({what})"}],
        )
    return body


def parse_quota(body: Any) -> Quota:
    body = _object(body, QUOTA_FIELDS, "a quota")
    p = Problems()
    quota = Quota(
        _count(body, "maxActive", p),
        _count(body, "perHour", p, low=1),
        _count(body, "burst", p, low=1),
        _paused(body, p),
    )
    p.raise_if_any("invalid quota")
    return quota


def _time_of_day(value: Any) -> int | None:
    """ms into the day of "HH:MM" (UTC), or None."""
    if type(value) is not str or len(value) != 5 or value[2] != ":":
        return None
    hours, minutes = value[:2], value[3:]
    if not (value.isascii() and hours.isdigit() and minutes.isdigit()):  # "²" is a digit
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return (int(hours) * 60 + int(minutes)) * 60_000


def _blackout(raw: Any, where: str, p: Problems) -> Blackout | None:
    if type(raw) is not dict or not BLACKOUT_FIELDS.issuperset(raw):
        p.add(where, f"must be an object with fields {sorted(BLACKOUT_FIELDS)}")
        return None
    daily = raw.get("daily", False)
    if type(daily) is not bool:
        p.add(f"{where}.daily", "must be true or false")
        return None
    ends = []
    for name in ("start", "end"):
        value = raw.get(name)
        try:
            ends.append(_time_of_day(value) if daily else parse_rfc3339(str(value)))
        except (ValueError, TypeError, OverflowError):
            ends.append(None)
        if ends[-1] is None:
            form = '"HH:MM" (UTC)' if daily else "an RFC 3339 time"
            p.add(f"{where}.{name}", f"must be {form}")
    if None in ends:
        return None
    start, end = ends
    if not daily and end <= start:  # type: ignore[operator]
        p.add(f"{where}.end", "must be after start")
        return None
    return Blackout(start, end, daily)  # type: ignore[arg-type]


def parse_source(body: Any, keep: Source | None) -> Source:
    body = _object(body, SOURCE_FIELDS, "a source")
    p = Problems()
    blackouts: list[Blackout] = []
    raw = body.get("blackouts", [])
    if type(raw) is not list or len(raw) > 100:
        p.add("blackouts", "must be a list of at most 100 windows")
        raw = []
    for index, item in enumerate(raw):
        window = _blackout(item, f"blackouts[{index}]", p)
        if window is not None:
            blackouts.append(window)
    source = Source(
        _rate(body.get("rate"), "rate", p),
        _count(body, "burst", p, low=1),
        _count(body, "maxActive", p),
        _paused(body, p),
        keep.throttle_rate if keep else None,
        keep.throttle_until if keep else 0,
        tuple(blackouts),
    )
    p.raise_if_any("invalid source")
    return source


def _host(request: web.Request) -> str:
    host = request.match_info["host"]
    if not 0 < len(host) <= HOST_MAX or not storable(host):
        raise ValidationFailed(
            "a source host has 1..253 characters, no NUL",
            details=[{"field": "host", "problem": "bad length or characters"}],
        )
    return host


def _job_type(request: web.Request) -> str:
    name = request.match_info["jobType"]
    if not JOB_TYPE.match(name):
        raise ValidationFailed(
            "a job type matches [a-z0-9._-]{1,128}",
            details=[{"field": "jobType", "problem": "bad job type"}],
        )
    return name


class LimitRoutes:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.broker = api.broker

    def register(self, app: web.Application, base: str) -> None:
        route = app.router
        route.add_get(f"{base}/quotas", self.quotas, allow_head=False)
        route.add_get(f"{base}/quotas/summary", self.quota_summary, allow_head=False)
        route.add_put(f"{base}/quotas/{{jobType}}", self.put_quota)
        route.add_delete(f"{base}/quotas/{{jobType}}", self.delete_quota)
        route.add_post(f"{base}/quotas/{{jobType}}/pause", self.pause_quota)
        route.add_post(f"{base}/quotas/{{jobType}}/resume", self.resume_quota)
        route.add_get(f"{base}/sources", self.sources, allow_head=False)
        route.add_get(f"{base}/sources/{{host}}", self.source, allow_head=False)
        route.add_put(f"{base}/sources/{{host}}", self.put_source)
        route.add_delete(f"{base}/sources/{{host}}", self.delete_source)
        route.add_post(f"{base}/sources/{{host}}/pause", self.pause_source)
        route.add_post(f"{base}/sources/{{host}}/resume", self.resume_source)
        route.add_post(f"{base}/sources/{{host}}/throttle", self.throttle_source)
        route.add_put(f"{base}/fairness", self.put_weight)
        route.add_get(f"{base}/audit", self.audit, allow_head=False)
        route.add_post(f"{base}/jobs/{{jobId}}/retry", self.retry_job)

    # -- plumbing -------------------------------------------------------------------
    def _operator(self, request: web.Request, action: str, target: str) -> tuple[str, Audit]:
        principal = self.api.principal(request)
        tenant = principal.require("orch:quota")
        reason = operator_reason(request, required=True)
        audit = Audit(principal.subject, action, target, reason, _ticket(request))
        return tenant, audit

    async def _body(self, request: web.Request) -> Any:
        return parse_json(await self.api.body(request))

    def _quota_view(self, tenant: str, job_type: str, quota: Quota) -> dict[str, Any]:
        engine = self.broker.engine
        now = self.broker.clock.now_ms()
        live = engine.limits.quota_state(
            engine.tenants.id(tenant), engine.job_types.id(job_type), now
        )
        return {"jobType": job_type, **quota_json(quota), **live}

    def _source_view(self, tenant: str, host: str, source: Source) -> dict[str, Any]:
        engine = self.broker.engine
        now = self.broker.clock.now_ms()
        live = engine.limits.source_state(engine.tenants.id(tenant), host, now)
        config = source_json(source)
        config["throttleUntil"] = rfc3339(source.throttle_until) if source.throttle_until else None
        config["blackouts"] = [
            {"start": _show(b.start, b.daily), "end": _show(b.end, b.daily), "daily": b.daily}
            for b in source.blackouts
        ]
        breakers = {
            engine.job_types.name(jtype): {"state": s, "failures": f, "attempts": t}
            for jtype, (s, f, t) in live.pop("breakers").items()
        }
        paused_until = live.pop("pausedUntil")
        return {
            "host": host,
            **config,
            **live,
            "penaltyUntil": rfc3339(paused_until) if paused_until else None,
            "breakers": breakers,
        }

    # -- quotas -----------------------------------------------------------------------
    async def quotas(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:read", "orch:quota")
        found = self.broker.quotas_of(tenant)
        return json_response({"quotas": [self._quota_view(tenant, n, q) for n, q in found]})

    async def quota_summary(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:read", "orch:quota")
        found = self.broker.quotas_of(tenant)
        views = [self._quota_view(tenant, n, q) for n, q in found]
        return json_response(
            {
                "quotas": len(views),
                "paused": sorted(v["jobType"] for v in views if v["paused"]),
                "held": sorted(v["jobType"] for v in views if v["held"]),
                "inFlight": sum(v["inFlight"] for v in views),
                "liveJobs": self.broker.engine.live_jobs(tenant),
            }
        )

    async def put_quota(self, request: web.Request) -> web.Response:
        job_type = _job_type(request)
        tenant, audit = self._operator(request, "quota.set", job_type)
        quota = parse_quota(await self._body(request))
        await self.broker.set_limit(tenant, "quota", job_type, quota, audit)
        return json_response(self._quota_view(tenant, job_type, quota))

    async def delete_quota(self, request: web.Request) -> web.Response:
        job_type = _job_type(request)
        tenant, audit = self._operator(request, "quota.remove", job_type)
        self._known(tenant, "quota", job_type)
        await self.broker.set_limit(tenant, "quota", job_type, None, audit)
        return json_response({"jobType": job_type, "removed": True})

    async def pause_quota(self, request: web.Request) -> web.Response:
        return await self._pause_quota(request, True)

    async def resume_quota(self, request: web.Request) -> web.Response:
        return await self._pause_quota(request, False)

    async def _pause_quota(self, request: web.Request, paused: bool) -> web.Response:
        job_type = _job_type(request)
        action = "quota.pause" if paused else "quota.resume"
        tenant, audit = self._operator(request, action, job_type)
        quota = self.broker.quota_of(tenant, job_type) or Quota()
        quota = Quota(quota.max_active, quota.per_hour, quota.burst, paused)
        await self.broker.set_limit(tenant, "quota", job_type, quota, audit)
        return json_response(self._quota_view(tenant, job_type, quota))

    # -- sources ----------------------------------------------------------------------
    async def sources(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:read", "orch:quota")
        found = self.broker.sources_of(tenant)
        return json_response({"sources": [self._source_view(tenant, h, s) for h, s in found]})

    async def source(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:read", "orch:quota")
        host = _host(request)
        source = self.broker.source_of(tenant, host)
        if source is None:
            raise NotFound(f"no source {host!r}")
        return json_response(self._source_view(tenant, host, source))

    async def put_source(self, request: web.Request) -> web.Response:
        host = _host(request)
        tenant, audit = self._operator(request, "source.set", host)
        known = self.broker.source_of(tenant, host)
        source = parse_source(await self._body(request), known)
        await self.broker.set_limit(tenant, "source", host, source, audit)
        return json_response(self._source_view(tenant, host, source))

    async def delete_source(self, request: web.Request) -> web.Response:
        host = _host(request)
        tenant, audit = self._operator(request, "source.remove", host)
        self._known(tenant, "source", host)
        await self.broker.set_limit(tenant, "source", host, None, audit)
        return json_response({"host": host, "removed": True})

    async def pause_source(self, request: web.Request) -> web.Response:
        return await self._change_source(request, "source.pause", paused=True)

    async def resume_source(self, request: web.Request) -> web.Response:
        return await self._change_source(request, "source.resume", paused=False)

    async def throttle_source(self, request: web.Request) -> web.Response:
        self._operator(request, "source.throttle", _host(request))  # scope and reason first
        body = _object(await self._body(request), frozenset({"rate", "seconds"}), "a throttle")
        p = Problems()
        rate = _rate(body.get("rate"), "rate", p)
        seconds = _count(body, "seconds", p, low=1)
        if rate is None or seconds is None or seconds > 7 * 86_400:
            p.add("", "needs rate (tokens per second) and seconds (1..604800)")
        p.raise_if_any("invalid throttle")
        until = self.broker.clock.now_ms() + seconds * 1000  # type: ignore[operator]
        return await self._change_source(
            request, "source.throttle", throttle_rate=rate, throttle_until=until
        )

    async def _change_source(
        self, request: web.Request, action: str, **change: Any
    ) -> web.Response:
        host = _host(request)
        tenant, audit = self._operator(request, action, host)
        known = self.broker.source_of(tenant, host) or Source()
        fields = {
            "rate": known.rate, "burst": known.burst, "max_active": known.max_active,
            "paused": known.paused, "throttle_rate": known.throttle_rate,
            "throttle_until": known.throttle_until, "blackouts": known.blackouts,
        }  # fmt: skip
        source = Source(**{**fields, **change})
        await self.broker.set_limit(tenant, "source", host, source, audit)
        return json_response(self._source_view(tenant, host, source))

    def _known(self, tenant: str, kind: str, name: str) -> None:
        found = self.broker.quota_of if kind == "quota" else self.broker.source_of
        if found(tenant, name) is None:
            raise NotFound(f"no {kind} {name!r}")

    # -- fairness, audit, retry ----------------------------------------------------------
    async def put_weight(self, request: web.Request) -> web.Response:
        tenant, audit = self._operator(request, "fairness.weight", "")
        body = _object(await self._body(request), frozenset({"weight"}), "a weight")
        weight = body.get("weight")
        if type(weight) is not int or not 1 <= weight <= 1000:
            raise ValidationFailed(
                "weight must be an integer 1..1000",
                details=[{"field": "weight", "problem": "must be 1..1000"}],
            )
        await self.broker.set_limit(tenant, "weight", "", weight, audit)
        return json_response({"tenant": tenant, "weight": weight})

    async def audit(self, request: web.Request) -> web.Response:
        tenant = self.api.principal(request).require("orch:read", "orch:quota")
        rows = await self.broker.runs.audit(tenant, page_size(request))
        entries = [
            {
                "at": rfc3339(r.at),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "reason": r.reason,
                "ticket": r.ticket,
            }
            for r in rows
        ]
        return json_response({"entries": entries})

    async def retry_job(self, request: web.Request) -> web.Response:
        principal = self.api.principal(request)
        tenant = principal.require("orch:operate")
        reason = operator_reason(request, required=True)
        text, created, number = job_in_path(request)
        audit = Audit(principal.subject, "job.retry", text, reason, _ticket(request))
        jid, state = await self.broker.retry_job(tenant, created, number, text, audit)
        return json_response({"jobId": job_id(created, jid), "state": states.NAMES[state]})


def _show(value: int, daily: bool) -> str:
    if daily:
        minutes = value // 60_000
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    return rfc3339(value)
