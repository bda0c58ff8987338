"""Type stubs of the compiled attempt log; ``attempt_log_py.py`` is the specification."""

from collections.abc import Callable, Container
from typing import Any

class AttemptLog:
    def __init__(self, row_type: type, leased: int, pending: int) -> None: ...
    def __len__(self) -> int: ...
    def oldest(self, default: int) -> int: ...
    def leased(
        self, at: int, worker: str | None, jobs: list[Any], tokens: list[int], deadlines: list[int]
    ) -> None: ...
    def extended(
        self, at: int, jobs: list[Any], tokens: list[int], deadlines: list[int]
    ) -> None: ...
    def finished(
        self,
        at: int,
        jobs: list[Any],
        tokens: list[int],
        statuses: list[str],
        states: list[int],
        due: list[int],
        errors: list[bytes | None],
        outputs: list[bytes | None],
    ) -> None: ...
    def changed(self, at: int, jobs: list[Any], state: int, reason: str | None) -> None: ...
    def cut(
        self,
        live: Callable[[int, int], tuple[int, int, str | None, int]],
        new: Container[int],
        hold_from: int | None = None,
    ) -> list[Any]: ...
