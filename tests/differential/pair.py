"""Load a compiled kernel and its twin side by side for the differential tier.

Here a kernel that failed to build is an error, never a skip.
"""

from __future__ import annotations

import random
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


ID_PATTERNS = ["dense", "strided", "sharded", "random", "wrapping"]


def id_pattern(pattern: str, n: int, rng: random.Random) -> list[int]:
    """``n`` distinct job ids laid out to crowd a native table's home slots."""
    if pattern == "dense":
        return list(range(n))
    if pattern == "strided":
        return [i << 20 for i in range(n)]
    if pattern == "sharded":
        return [(i % 8) << 48 | i // 8 for i in range(n)]
    if pattern == "random":
        return list({rng.getrandbits(63) for _ in range(n)})
    if pattern == "wrapping":
        # old ids stay while new ones arrive: the live range spans the table many times
        return [i * 7919 + (i % 5) * 10**6 for i in range(n)]
    raise ValueError(pattern)
