"""Shared set-up for engine benchmarks: an engine with N jobs queued."""

from __future__ import annotations

from broker import _native
from broker._native import TWINS
from broker.engine import Engine, JobSpec

TENANT = "tenant-a"
JOB_TYPE = "scan"
SPEC = JobSpec(JOB_TYPE, b"")  # one shared empty payload: we price the broker, not the bytes


def kernels(impl: str) -> object:
    if impl == "twin":
        return TWINS
    used = ("ready_queues", "lease_table", "timer_index", "job_record", "job_table")
    if not all(_native.NATIVE_KERNELS[name] for name in used):
        raise RuntimeError(f"compiled kernels missing: {_native.NATIVE_KERNELS}")
    return _native


def filled_engine(impl: str, queued: int, tenants: int = 1) -> Engine:
    engine = Engine(kernels=kernels(impl))
    chunk = [SPEC] * 10_000
    for start in range(0, queued, 10_000):
        n = min(10_000, queued - start)
        engine.submit(
            0, f"tenant-{start // 10_000 % tenants}" if tenants > 1 else TENANT, chunk[:n]
        )
    return engine
