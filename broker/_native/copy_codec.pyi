"""Type stubs of the compiled COPY codec; ``copy_codec_py.py`` is the specification."""

from collections.abc import Container, Sequence
from typing import Any

class CopyCodec:
    def history(
        self, rows: Sequence[Sequence[Any]], floor: int, terminal: Container[int]
    ) -> tuple[bytes, list[int]]: ...
