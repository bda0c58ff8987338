"""Submitting jobs and reading them back.

A submission is retried on 429/503 (honouring ``Retry-After``) and on
connection failures. Retrying a write is only safe because every ``submit``
call sends one ``Idempotency-Key`` (a fresh uuid4) on all of its tries: if the
first try's jobs were created but its answer was lost, the broker replays
that answer to the retry instead of creating the jobs a second time.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .client import API_BASE, Client, RetryPolicy

MAX_JOBS_PER_SUBMIT = 10_000


class Producer:
    """Submit jobs (``submit``, ``submit_one``) and runs (``create_run``); read them
    back (``get``, ``run``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        client: Client | None = None,
    ) -> None:
        self.client = client or Client(base_url, token)
        self.retry = retry or RetryPolicy()

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def submit(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit jobs in the wire format; their ``{jobId, state, deduplicated}`` in order.

        The batch is all-or-nothing on the broker's side. The answer comes
        after the jobs are durable.
        """
        if not 1 <= len(jobs) <= MAX_JOBS_PER_SUBMIT:
            raise ValueError(f"submit takes 1..{MAX_JOBS_PER_SUBMIT} jobs, not {len(jobs)}")
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        reply = await self.client.request_retrying(
            "POST", f"{API_BASE}/jobs", {"jobs": jobs}, policy=self.retry, headers=headers
        )
        result: list[dict[str, Any]] = reply["jobs"]
        return result

    async def submit_one(self, job_type: str, payload: Any, **fields: Any) -> dict[str, Any]:
        """Submit one job; ``fields`` are wire fields, in camelCase or snake_case.

        ``submit_one("scan", {...}, priority=7, max_attempts=3)`` sends
        ``{"jobType": "scan", "payload": {...}, "priority": 7, "maxAttempts": 3}``.
        """
        job = {"jobType": job_type, "payload": payload}
        job.update({camel_case(name): value for name, value in fields.items()})
        return (await self.submit([job]))[0]

    async def create_run(
        self, jobs: list[dict[str, Any]], run_token: str | None = None
    ) -> dict[str, Any]:
        """Create a DAG run: every job needs a ``key``; ``dependsOn`` names keys.

        Returns ``{runId, deduplicated, jobs: [{key, jobId, state}]}``. A retry
        after a lost answer finds the same run (the Idempotency-Key, and the
        ``run_token`` when given)."""
        body: dict[str, Any] = {"jobs": jobs}
        if run_token is not None:
            body["runToken"] = run_token
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        reply: dict[str, Any] = await self.client.request_retrying(
            "POST", f"{API_BASE}/runs", body, policy=self.retry, headers=headers
        )
        return reply

    async def run(self, run_id: str, view: str = "") -> dict[str, Any]:
        """A run's summary, or with ``view`` ``"dag"`` / ``"timeline"`` that view."""
        if view not in ("", "dag", "timeline"):
            raise ValueError("view must be '', 'dag' or 'timeline'")
        path = f"{API_BASE}/runs/{quote(run_id, safe='')}" + (f"/{view}" if view else "")
        reply: dict[str, Any] = await self.client.request_retrying("GET", path, policy=self.retry)
        return reply

    async def get(self, job_id: str) -> dict[str, Any]:
        """The job object with its attempts and transitions (404 is an ``ApiError``)."""
        reply: dict[str, Any] = await self.client.request_retrying(
            "GET", f"{API_BASE}/jobs/{quote(job_id, safe='')}", policy=self.retry
        )
        return reply


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
