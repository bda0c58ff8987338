"""Test-wide settings.

Hypothesis runs with a fixed, modest profile so the suite stays fast and
repeatable; set HYPOTHESIS_PROFILE=thorough for a deeper local run.

With BROKER_NO_EXTENSIONS=1 there is no compiled kernel to compare with its
twin, so the differential tier is not collected on that leg (it is not a skip:
those tests have nothing to run against). Every other test runs on the twins.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from broker import _native
from broker._native import HAVE_NATIVE, NATIVE_KERNELS, NO_EXTENSIONS, TWINS
from broker.engine import Engine, EngineSettings

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

collect_ignore_glob = ["differential/*"] if NO_EXTENSIONS else []


KERNEL_SETS = ["twin"] if NO_EXTENSIONS else ["twin", "native"]


@pytest.fixture(params=KERNEL_SETS, ids=lambda name: f"{name}-kernels")
def kernels(request: pytest.FixtureRequest) -> object:
    """Each kernel set in turn: the twins always, the compiled ones unless disabled.

    On the native leg a kernel that failed to build fails the test instead of
    quietly running the twins twice.
    """
    if request.param == "twin":
        return TWINS
    assert HAVE_NATIVE, f"compiled kernels missing: {NATIVE_KERNELS}"
    return _native


@pytest.fixture
def new_engine(kernels: object) -> Callable[..., Engine]:
    """Build engines on the kernel set under test."""

    def build(settings: EngineSettings | None = None, **kw: object) -> Engine:
        return Engine(settings, kernels=kernels, **kw)  # type: ignore[arg-type]

    return build
