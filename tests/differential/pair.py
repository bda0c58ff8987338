"""Load a compiled kernel and its twin side by side for the differential tier.

Here a kernel that failed to build is an error, never a skip.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from broker._native import native, twin


def both(name: str) -> tuple[ModuleType, ModuleType]:
    """(compiled, twin) modules of kernel ``name``; fails loudly when not built."""
    try:
        compiled = native(name)
    except ImportError as exc:  # pragma: no cover - a broken build
        pytest.fail(f"compiled kernel {name} is not built: {exc}")
    return compiled, twin(name)
