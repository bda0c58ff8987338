"""The README's first command: a real broker with built-in producer and workers."""

from __future__ import annotations

from pathlib import Path

from broker import states
from broker.config import Config
from broker.http_demo import demo, demo_config
from broker.store.sqlite import SqliteLedger


async def test_http_demo_runs_every_job_to_the_end(tmp_path: Path) -> None:
    config = demo_config(Config(var_dir=tmp_path / "var"), port_given=False, store_given=False)
    lines: list[str] = []
    figures = await demo(config, jobs=600, workers=2, batch=50, fail_rate=0.2, out=lines.append)
    assert figures["jobs"] == 600 and figures["jobs_per_second"] > 0
    assert "600/600 finished" in "\n".join(lines) and lines[-1].startswith("demo: 600 jobs")
    ledger = SqliteLedger(tmp_path / "var" / "demo.db")
    await ledger.open()
    live = await ledger.load_live(0)
    assert live.jobs == [] and live.next_jid == 601
    history = await ledger.read_job(1)
    assert history is not None and history.job.state in (states.SUCCEEDED, states.DEAD)
    await ledger.close()
