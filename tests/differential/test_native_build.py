"""The compiled kernels hold what their source asks for.

GCC 12 deleted every ``__builtin_prefetch`` of the job tables as dead code
once their home slot became a 128-bit multiply-shift (commit 0eb9a6e), and
nothing noticed: the kernels ran, agreed with their twins, and never
prefetched. So the machine code is checked here.
"""

from __future__ import annotations

import platform
import shutil
import subprocess

import pytest

from broker._native import native

# the instruction broker_prefetch (prefetch.h) emits, per machine
PREFETCH = {"x86_64": "prefetcht0", "aarch64": "prfm"}

# kernels whose batches fetch table slots ahead
PREFETCHING = ["job_table", "lease_table", "ready_queues"]


@pytest.mark.parametrize("name", PREFETCHING)
def test_kernel_has_prefetch_instructions(name: str) -> None:
    instruction = PREFETCH.get(platform.machine())
    if instruction is None:
        pytest.skip(f"no prefetch instruction known for {platform.machine()}")
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils) is needed to inspect the compiled kernels"
    path = native(name).__file__
    assert path is not None
    listing = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", path], check=True, capture_output=True, text=True
    ).stdout
    assert f"\t{instruction} " in listing or f"\t{instruction}\t" in listing, (
        f"{name}: no {instruction} in the compiled kernel; the compiler dropped its prefetches"
    )
