"""``python -m loadtests``: every scenario for real, tiny sizes, against a broker subprocess.

Each run writes its JSON result and Markdown table to a temporary ``--out``; the
figures must be there and make sense. One test also draws the plots, and one runs
a burn-down on a fresh Postgres database for the WAL figures (Postgres is always
up in CI: without it that test fails, it does not skip).
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from loadtests.broker_process import cpu_seconds
from loadtests.cli import main

CPU = ("broker_cpu_s", "generator_cpu_s", "broker_cpu_per_wall", "generator_cpu_per_wall")
POSTGRES_ADMIN = os.environ.get(
    "BROKER_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def run(out: Path, *argv: str, store: str = "sqlite") -> tuple[dict[str, Any], list[Path]]:
    files = main([*argv, "--out", str(out)])
    json_file, md_file = files[0], files[1]
    assert json_file.suffix == ".json" and md_file.suffix == ".md"
    assert json_file.parent == out and md_file.exists()
    document = orjson.loads(json_file.read_bytes())
    figures: dict[str, Any] = document["figures"]
    table = md_file.read_text()
    assert table.startswith(f"# {figures['scenario']}") and "| figure | value |" in table
    assert figures["machine"] and figures["store"] == store
    return document, files


def positive(figures: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert figures[key] > 0, f"{key} = {figures[key]}"


def cpu_recorded(figures: dict[str, Any], prefix: str = "") -> None:
    for key in CPU:
        assert figures[prefix + key] >= 0, key
    assert figures[prefix + "wall_s"] > 0


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100 and len(data) > 2_000


def test_burn_down(tmp_path: Path) -> None:
    doc, _ = run(tmp_path, "burn-down", "--jobs", "300", "--workers", "2", "--batch", "50")
    f = doc["figures"]
    assert f["scenario"] == "burn-down" and f["jobs"] == 300 and f["batch"] == 50
    positive(f, "submit_jobs_per_s", "drain_jobs_per_s", "round_trip_p50_ms")
    assert f["round_trip_p99_ms"] >= f["round_trip_p50_ms"]
    cpu_recorded(f, "submit_")
    cpu_recorded(f, "drain_")


def test_single(tmp_path: Path) -> None:
    doc, _ = run(tmp_path, "single", "--jobs", "200", "--workers", "8")
    f = doc["figures"]
    assert f["scenario"] == "single" and f["batch"] == 1 and f["jobs"] == 200
    positive(f, "drain_jobs_per_s", "round_trip_p50_ms")
    cpu_recorded(f, "drain_")


def test_steady(tmp_path: Path) -> None:
    doc, _ = run(tmp_path, "steady", "--duration", "1.5", "--producers", "1", "--workers", "2")
    f = doc["figures"]
    positive(f, "submitted", "acked", "in_jobs_per_s", "out_jobs_per_s", "queue_depth_samples")
    assert 1.4 < f["duration_s"] < 3
    assert isinstance(f["backlog_slope_jobs_per_s"], float)
    # nothing is acked that was not submitted (jobs in flight at the end are left out)
    assert f["acked"] <= f["submitted"] + f["batch"] * f["workers"]
    cpu_recorded(f)
    positive(f, "broker_cpu_s")


def test_latency_and_its_cdf(tmp_path: Path) -> None:
    doc, files = run(tmp_path, "latency", "--rate", "200", "--duration", "1", "--plot")
    f = doc["figures"]
    assert f["jobs"] == 200 and 100 < f["achieved_jobs_per_s"] < 250
    for measure in ("submit_to_claim", "claim_to_ack"):
        positive(f, f"{measure}_p50_ms")
        assert (
            f[f"{measure}_p50_ms"]
            <= f[f"{measure}_p99_ms"]
            <= f[f"{measure}_p999_ms"]
            <= f[f"{measure}_max_ms"]
        )
    cpu_recorded(f)
    assert files[2].suffix == ".png"
    assert_png(files[2])


def test_wakeup(tmp_path: Path) -> None:
    doc, _ = run(tmp_path, "wakeup", "--samples", "15", "--workers", "2", "--pause-ms", "20")
    f = doc["figures"]
    assert f["samples"] == 15
    positive(f, "wakeup_p50_ms")
    assert f["wakeup_p50_ms"] <= f["wakeup_p99_ms"] <= f["wakeup_max_ms"] < 5_000
    cpu_recorded(f)


def test_tenants(tmp_path: Path) -> None:
    doc, files = run(tmp_path, "tenants", "--tenants", "200", "--jobs", "1000")
    f, rows = doc["figures"], doc["rows"]
    assert f["tenants"] == 200 and f["quiet_workers"] == 199
    assert f["noisy_jobs"] + 199 * f["quiet_jobs_per_tenant"] == 1000
    assert f["quiet_tenants_fully_claimed"] == 199
    positive(f, "quiet_all_claimed_s", "noisy_jobs_per_s", "quiet_submit_to_claim_p50_ms")
    assert 0 < f["noisy_claim_share"] < 1
    assert len(rows) == 200 and rows[0]["tenant"] == "noisy"
    assert sum(r["claimed"] for r in rows) == 1000
    assert abs(sum(r["claim_share"] for r in rows) - 1) < 1e-3
    cpu_recorded(f)
    assert "(11 of 200 rows" in files[1].read_text()


def test_payload(tmp_path: Path) -> None:
    doc, _ = run(tmp_path, "payload", "--jobs", "100", "--payload-bytes", "16384", "--batch", "10")
    f = doc["figures"]
    assert f["payload_bytes"] == 16384
    positive(f, "drain_jobs_per_s", "drain_mb_per_s", "submit_mb_per_s")
    # MB/s is jobs/s times the payload size
    assert f["drain_mb_per_s"] == pytest.approx(f["drain_jobs_per_s"] * 16384 / 1e6, rel=0.02)
    cpu_recorded(f, "drain_")


def test_burn_down_plot_sweeps_batch_sizes(tmp_path: Path) -> None:
    doc, files = run(tmp_path, "burn-down", "--jobs", "200", "--batches", "1,20", "--plot")
    assert [row["batch"] for row in doc["rows"]] == [1, 20]
    assert all(row["drain_jobs_per_s"] > 0 for row in doc["rows"])
    assert doc["figures"]["best_batch"] in (1, 20)
    assert files[2].suffix == ".png"
    assert_png(files[2])


async def _admin(sql: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database ``lt_<uuid>`` on the local cluster, dropped afterwards.

    Synchronous (``asyncio.run``): the load harness runs its own uvloop, so the
    test must not run inside an event loop."""
    name = f"lt_{uuid.uuid4().hex}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"Postgres is required at {POSTGRES_ADMIN}: {exc!r}")
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


def test_burn_down_on_postgres_reports_wal(tmp_path: Path) -> None:
    with fresh_database() as dsn:
        argv = ("burn-down", "--jobs", "300", "--batch", "50", "--store", dsn)
        doc, files = run(tmp_path, *argv, store="postgresql")
    f = doc["figures"]
    assert f["jobs"] == 300
    positive(f, "drain_jobs_per_s", "wal_bytes", "wal_bytes_per_job")
    assert f["wal_bytes_per_job"] == pytest.approx(f["wal_bytes"] / 300, abs=0.1)
    assert f["wal_fold_bytes"] >= 0 and f["wal_fold_bytes_per_job"] >= 0
    assert "| wal_bytes_per_job |" in files[1].read_text()


def test_limits_drains_limited_and_unlimited_rounds(tmp_path: Path) -> None:
    argv = ("limits", "--tenants", "8", "--jobs", "400", "--hosts-per-tenant", "3")
    doc, _ = run(tmp_path, *argv)
    f = doc["figures"]
    assert f["jobs"] == 400 and f["source_hosts"] == 24
    # two limited rounds, each configured (8 quotas + 24 sources) and removed again
    assert f["limit_changes"] == 2 * 2 * (8 + 24)
    # the limits were in force while the limited rounds drained, and only then
    assert f["limited_sources_in_force"] == 3 and f["unlimited_sources_in_force"] == 0
    positive(f, "unlimited_drain_jobs_per_s", "limited_drain_jobs_per_s")
    assert f["limited_over_unlimited"] == pytest.approx(
        f["limited_drain_jobs_per_s"] / f["unlimited_drain_jobs_per_s"], abs=0.001
    )
    assert len(f["limited_rounds_jobs_per_s"].split(", ")) == 2


def test_cpu_seconds_keep_what_exited_children_spent() -> None:
    """A Postgres backend that exits during a run leaves its CPU with the
    postmaster (as a reaped child's): the total must not drop it."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys, time\n"
         f"subprocess.run([sys.executable, '-c', {burn!r}])\nprint(flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"\n"  # child reaped
        assert cpu_seconds(parent.pid) >= 0.3
    finally:
        parent.kill()
        parent.wait()
