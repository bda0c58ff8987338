"""The demo runs every job to a terminal state and reports what it did."""

from __future__ import annotations

from broker.cli import main
from broker.demo import run_demo


def test_demo_finishes_every_job() -> None:
    lines: list[str] = []
    figures = run_demo(jobs=3_000, batch=50, fail_rate=0.3, seed=5, out=lines.append)
    assert figures["succeeded"] + figures["dead"] == 3_000
    assert figures["dead"] > 0  # with 30% failing attempts a few run out of attempts
    assert lines[0].startswith("demo: 3,000 jobs") and "jobs/s" in lines[-1]


def test_cli_demo(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--in-process", "--jobs", "500", "--batch", "20"]) == 0
    assert "500 succeeded" in capsys.readouterr().out
