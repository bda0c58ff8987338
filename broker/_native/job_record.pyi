"""Type stubs of the compiled job record; ``job_record_py.py`` is the specification."""

from typing import Any

class Job:
    jid: int
    created: int
    not_before: int
    last_token: int
    tenant: int
    jtype: int
    lease_ms: int
    attempt: int
    max_attempts: int
    priority: int
    state: int
    payload: bytes
    meta: Any
    last_status: str

    def __init__(
        self,
        jid: int,
        tenant: int,
        jtype: int,
        priority: int,
        max_attempts: int,
        lease_ms: int,
        created: int,
        not_before: int,
        payload: bytes,
        meta: Any,
        state: int,
    ) -> None: ...
    @staticmethod
    def all_in(jobs: list[Job | None], tenant: int, state: int) -> bool: ...
    @staticmethod
    def lease_many(jobs: list[Job], state: int) -> None: ...
    @staticmethod
    def finish_many(jobs: list[Job], tokens: list[int], state: int, status: str) -> list[Job]: ...
