"""The HTTP core the producer and the worker share.

One ``aiohttp.ClientSession`` per client, opened on first use (a session must
be created inside a running event loop) and kept alive so every call after
the first reuses a pooled connection. Bodies are encoded with orjson. A
non-2xx answer becomes ``ApiError`` built from the broker's error envelope
``{"error": {"code", "message", "traceId"}}``, with ``Retry-After`` parsed,
so callers can tell "try again later" from "you sent something wrong".

This module talks HTTP only: it imports nothing from the server side, so the
SDK can be lifted out of the repository as it is.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from types import TracebackType
from typing import Any

import aiohttp
import orjson

API_BASE = "/api/v1/orchestrator"

# Statuses that mean "the broker (or a proxy before it) is busy, not that the request is wrong".
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
_CONNECTION_FAILURES = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class ApiError(Exception):
    """A non-2xx answer, as the broker's error envelope describes it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        trace_id: str | None = None,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.trace_id = trace_id
        self.retry_after = retry_after
        self.details = details

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES


def is_transient(exc: BaseException) -> bool:
    """True for failures a later identical request may not meet.

    Busy answers (429, 503 and gateway errors) and the connection failing
    (refused, reset, closed mid-answer, timed out). Everything else is the
    caller's mistake or a refusal, and retrying it would only repeat it.
    """
    if isinstance(exc, ApiError):
        return exc.transient
    return isinstance(exc, _CONNECTION_FAILURES)


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, ApiError) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying a transient failure, and how long to wait between tries.

    Without a ``Retry-After`` the wait is "full jitter" exponential backoff:
    uniform in ``[0, min(cap_s, base_s * 2**n)]``, which spreads a crowd of
    clients instead of having them return in step. With one, the server's
    figure is a floor and a little jitter is added on top for the same reason.
    ``attempts`` bounds the tries and ``budget_s`` the total time spent.
    """

    attempts: int = 8
    base_s: float = 0.05
    cap_s: float = 5.0
    budget_s: float = 60.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** min(retry, 30)))
        if retry_after is None:
            return random.uniform(0, ceiling)
        return retry_after + random.uniform(0, min(ceiling, self.base_s + retry_after / 10))


class Backoff:
    """The running state of one ``RetryPolicy``: next delay, and whether to give up."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] | None = None) -> None:
        self.policy = policy
        self._now = clock or asyncio.get_running_loop().time
        self.started = self._now()
        self.retries = 0

    def next_delay(self, exc: BaseException) -> float | None:
        """How long to sleep before retrying after ``exc``, or None to give up."""
        if not is_transient(exc) or self.retries + 1 >= self.policy.attempts:
            return None
        delay = self.policy.delay(self.retries, retry_after_of(exc))
        if self._now() - self.started + delay > self.policy.budget_s:
            return None
        self.retries += 1
        return delay

    def reset(self) -> None:
        self.started = self._now()
        self.retries = 0


class Client:
    """Base URL + bearer token + one keep-alive session; ``async with`` closes it."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        connections: int = 64,
        user_agent: str = "broker-sdk-python/1",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.connections = connections
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, json_serialize=_dumps_str
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """One call; the decoded JSON answer, or ``ApiError`` / a connection error."""
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        sent = dict(headers or {})
        if data is not None:
            sent["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        async with self.session.request(
            method, self.base_url + path, data=data, headers=sent, timeout=timeout
        ) as response:
            raw = await response.read()
            if response.status >= 400:
                raise _api_error(response.status, raw, response.headers.get("Retry-After"))
            return orjson.loads(raw) if raw else None

    async def request_retrying(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        policy: RetryPolicy,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """``request``, retried on transient failures as ``policy`` allows.

        The body is encoded once so every try sends the same bytes (the server
        compares them with an ``Idempotency-Key``'s first use).
        """
        data = None if body is None else orjson.dumps(body)
        backoff = Backoff(policy)
        while True:
            try:
                return await self.request(method, path, data, headers=headers)
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                delay = backoff.next_delay(exc)
                if delay is None:
                    raise
            await asyncio.sleep(delay)


def _dumps_str(value: Any) -> str:
    return orjson.dumps(value).decode()


def _api_error(status: int, raw: bytes, retry_after: str | None) -> ApiError:
    """Build the error from the envelope; a body that is not one (a proxy's page) still works."""
    code, message, trace, details = f"HTTP_{status}", raw[:200].decode(errors="replace"), None, None
    try:
        error = orjson.loads(raw)["error"]
        code = str(error["code"])
        message = str(error.get("message", ""))
        trace = error.get("traceId")
        details = error.get("details")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    return ApiError(status, code, message, trace, parse_retry_after(retry_after), details)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError, IndexError):
        return None
