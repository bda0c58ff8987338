"""Test-wide settings.

Hypothesis runs with a fixed, modest profile so the suite stays fast and
repeatable; set HYPOTHESIS_PROFILE=thorough for a deeper local run.

With BROKER_NO_EXTENSIONS=1 there is no compiled kernel to compare with its
twin, so the differential tier is not collected on that leg (it is not a skip:
those tests have nothing to run against). Every other test runs on the twins.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from broker._native import NO_EXTENSIONS

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
