"""One error root for the whole broker, with stable UPPER_SNAKE codes.

The HTTP status of each code is mapped in exactly one table (``HTTP_STATUS``);
the engine raises these, the API turns them into the error envelope. This
module depends on nothing else in the package.
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Root of every error the broker reports to a client."""

    code = "INTERNAL"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthenticated(OrchestratorError):
    code = "UNAUTHENTICATED"


class Forbidden(OrchestratorError):
    code = "FORBIDDEN"


class TenantRequired(OrchestratorError):
    code = "TENANT_REQUIRED"


class ValidationFailed(OrchestratorError, ValueError):
    code = "VALIDATION_FAILED"


class NotFound(OrchestratorError, LookupError):
    code = "NOT_FOUND"


class IllegalTransition(OrchestratorError):
    """A job was asked to move between states the lifecycle does not connect."""

    code = "ILLEGAL_TRANSITION"

    def __init__(self, job: int, from_state: str, to_state: str) -> None:
        super().__init__(f"job {job} cannot go from {from_state} to {to_state}")
        self.job = job
        self.from_state = from_state
        self.to_state = to_state


class LeaseConflict(OrchestratorError):
    code = "LEASE_CONFLICT"


class IdempotencyConflict(OrchestratorError):
    code = "IDEMPOTENCY_CONFLICT"


class PayloadTooLarge(OrchestratorError):
    code = "PAYLOAD_TOO_LARGE"


class Backpressure(OrchestratorError):
    """The ledger backlog is full: durable work is refused until it drains."""

    code = "BACKPRESSURE"
    retry_after_s = 1


class RateLimited(OrchestratorError):
    """Too many jobs queued (for the tenant, or in all): shed load before it grows."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, limit: int, remaining: int, retry_after_s: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.remaining = remaining
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after_s),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.retry_after_s),
        }


HTTP_STATUS: dict[str, int] = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "TENANT_REQUIRED": 403,
    "VALIDATION_FAILED": 400,
    "NOT_FOUND": 404,
    "ILLEGAL_TRANSITION": 409,
    "LEASE_CONFLICT": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "BACKPRESSURE": 503,
    "NOT_READY": 503,
    "METHOD_NOT_ALLOWED": 405,
    "INTERNAL": 500,
}
