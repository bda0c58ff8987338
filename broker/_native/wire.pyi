"""Type stubs of the compiled wire codec; ``wire_py.py`` is the specification."""

from collections.abc import Callable, Container, Sequence
from typing import Any

class Wire:
    def claimed(
        self,
        jobs: Sequence[Any],
        tokens: Sequence[int],
        deadlines: Sequence[int],
        type_names: Sequence[str],
        tenant_names: Sequence[str],
        ceiling: Callable[[int], int],
    ) -> bytes: ...
    def plain_successes(self, results: list[Any]) -> tuple[list[int], list[int]] | None: ...
    def encode_each(self, values: list[Any]) -> list[bytes]: ...
    def submitted(self, replies: Sequence[Any], state_names: Sequence[str]) -> bytes: ...
    def ack_results(
        self, job_ids: Sequence[Any], replies: Sequence[Any], state_names: Sequence[str]
    ) -> bytes: ...
    def request_head(
        self, head: bytes, routes: Container[bytes], max_body: int
    ) -> tuple[str, int, dict[str, bytes], bool] | None: ...
