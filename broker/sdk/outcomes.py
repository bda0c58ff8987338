"""What a handler's return or exception tells the broker: one ack result.

A plain exception is a retryable failure: most handler errors (a flaky
upstream, a timeout) are worth another attempt, and the broker's
``maxAttempts`` bounds the cost of being wrong. A handler that knows better
says so with ``NonRetryable`` (straight to the dead-letter queue) or
``RetryAfter`` (the upstream named a time; the retry will not come sooner).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_MESSAGE = 4096
MAX_CLASS = 128
MAX_RETRY_AFTER_S = 86_400


class NonRetryable(Exception):
    """Fail the attempt for good: retrying cannot help (bad input, a 4xx upstream...)."""


class RetryAfter(Exception):
    """Fail the attempt, and retry no sooner than ``seconds`` from now."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds} s")
        self.seconds = seconds


def succeeded(job: dict[str, Any], output: Any) -> dict[str, Any]:
    """A success carrying ``output``, encoded now so a bad value fails this job only.

    An output orjson cannot encode would otherwise break the encoding of the
    whole ack batch it travels in. It is a bug that would recur on every
    attempt, so it is reported as a non-retryable failure.
    """
    try:
        encoded = orjson.Fragment(orjson.dumps(output))
    except TypeError as exc:
        return _result(
            job,
            "failed",
            _error("TypeError", f"handler output is not JSON: {exc}", retryable=False),
        )
    result = _result(job, "succeeded")
    result["output"] = encoded
    return result


def failed(job: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """The ack result for a handler that raised ``exc``."""
    name = type(exc).__name__
    message = str(exc)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return _result(job, "timed_out", _error(name, message or "handler timed out"))
    if isinstance(exc, NonRetryable):
        return _result(job, "failed", _error(name, message, retryable=False))
    error = _error(name, message)
    if isinstance(exc, RetryAfter):
        error["retryAfterSeconds"] = min(max(exc.seconds, 0), MAX_RETRY_AFTER_S)
    return _result(job, "failed", error)


def abandoned(job: dict[str, Any]) -> dict[str, Any]:
    """A job still running when a drain ran out of time.

    Reported as a retryable failure so the broker hands it out again after
    its backoff instead of after the lease runs out.
    """
    error = _error("WorkerStopped", "the worker stopped before the job ended")
    return _result(job, "failed", error)


def _result(
    job: dict[str, Any], status: str, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"jobId": job["jobId"], "leaseId": job["leaseId"], "status": status}
    if error is not None:
        result["error"] = error
    return result


def _error(name: str, message: str, *, retryable: bool = True) -> dict[str, Any]:
    return {
        "class": name[:MAX_CLASS] or "Exception",
        "message": message[:MAX_MESSAGE],
        "retryable": retryable,
    }
