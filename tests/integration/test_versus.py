"""``python -m loadtests versus``: rounds interleaved, ratios taken within a round.

The peers' side goes through the anchors harness's command line; here a
stand-in harness writes ``results/raw/peers.json`` in the harness's own shape
(the fields ``run_peer`` reads: ``name``, ``n``, ``error``, ``all_ok`` and
the first of ``runs_detail``), so the parsing and the error paths are checked
without the peers' servers. The real harness was run beside the broker for the
figures in docs/performance.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest

from loadtests.cli import main
from loadtests.common import Result
from loadtests.versus import broker_names, check_harness, run_peer, same_round_ratio, versus

FAKE_HARNESS = """
import json, sys
from pathlib import Path
args = sys.argv[1:]
name, n = args[args.index("--only") + 1], int(args[args.index("--n") + 1])
if name == "broken":
    sys.exit("broken: could not start its server")
counter = Path("round-" + name)
r = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(r))
drain = {"steady": 1000.0, "drifting": 1000.0 * r, "fixed": 1000.0}.get(name, 0.0)
detail = {"enqueue_s": 1.0, "drain_s": n / drain if drain else 1.0,
          "processed": n if drain else 0, "remaining": 0, "ok": bool(drain),
          "enqueue_jobs_per_s": 2000.0, "drain_jobs_per_s": drain}
n_run = 500 if name == "fixed" else n
entry = {"name": name, "n": n_run, "error": None, "all_ok": bool(drain), "runs_detail": [detail]}
raw = Path("results/raw"); raw.mkdir(parents=True, exist_ok=True)
(raw / "peers.json").write_text(json.dumps({"bench": "peers", "peers": [entry]}))
"""


@pytest.fixture
def harness(tmp_path: Path) -> Path:
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers/run_peers.py").write_text(FAKE_HARNESS)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    os.symlink(sys.executable, tmp_path / ".venv/bin/python")
    return tmp_path


def test_run_peer_reads_the_round_the_harness_wrote(harness: Path) -> None:
    assert run_peer(harness, "drifting", 500) == {"enqueue": 2000.0, "drain": 1000.0}
    assert run_peer(harness, "drifting", 500) == {"enqueue": 2000.0, "drain": 2000.0}


def test_run_peer_reports_a_failed_or_incomplete_peer(harness: Path) -> None:
    with pytest.raises(RuntimeError, match="could not start its server"):
        run_peer(harness, "broken", 500)
    with pytest.raises(RuntimeError, match="did not handle every job"):
        run_peer(harness, "lazy", 500)
    with pytest.raises(RuntimeError, match="ran 500 jobs, not 700"):
        run_peer(harness, "fixed", 700)  # a ratio needs the same N on both sides


def test_a_directory_that_is_not_a_set_up_harness_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="setup.sh"):
        check_harness(tmp_path)


def test_two_stores_of_one_kind_are_two_contenders() -> None:
    names = broker_names([None, "postgresql://h/a", "postgresql://h/b"])
    assert names == {
        "broker (sqlite)": None,
        "broker (postgresql)": "postgresql://h/a",
        "broker (postgresql 2)": "postgresql://h/b",
    }


def test_ratios_pair_figures_of_the_same_round() -> None:
    mine = [{"enqueue": 10.0, "drain": 100.0}, {"enqueue": 10.0, "drain": 300.0}]
    theirs = [{"enqueue": 5.0, "drain": 50.0}, {"enqueue": 5.0, "drain": 300.0}]
    # rounds 2.0 and 1.0: median 1.5, where the ratio of medians would be 200/175
    assert same_round_ratio(mine, theirs, "drain") == 1.5
    assert same_round_ratio(mine, theirs, "enqueue") == 2.0


def test_versus_interleaves_peers_and_stores_round_by_round(harness: Path) -> None:
    order: list[str] = []

    def peer_round(peers_dir: Path, name: str, jobs: int) -> dict[str, float]:
        order.append(name)
        return run_peer(peers_dir, name, jobs)

    def burn(store: str | None) -> Result:
        order.append(f"broker {store}")
        drain = 4000.0 * (len(order) // 3)  # 4000 in round 1, 8000 in round 2
        return Result("burn-down", {"submit_jobs_per_s": 6000, "drain_jobs_per_s": drain})

    result = versus(harness, ["steady", "drifting"], [None], 700, 2, burn, peer_round)
    assert order == ["steady", "drifting", "broker None"] * 2
    figures = result.figures
    assert figures["jobs"] == 700 and figures["rounds"] == 2
    # steady: 4000/1000, 8000/1000; drifting: 4000/1000, 8000/2000
    assert figures["broker (sqlite) / steady drain"] == 6.0
    assert figures["broker (sqlite) / drifting drain"] == 4.0
    assert figures["broker (sqlite) / drifting enqueue"] == 3.0
    rows = {row["contender"]: row for row in result.rows}
    assert rows["drifting"]["drain_min"] == 1000 and rows["drifting"]["drain_max"] == 2000
    assert rows["broker (sqlite)"]["drain_jobs_per_s"] == 6000


def test_the_command_runs_a_real_broker_between_peers(harness: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    files = main(["versus", "--peers-dir", str(harness), "--peers", "steady", "--rounds", "1",
                  "--jobs", "400", "--out", str(out)])  # fmt: skip
    document = orjson.loads(files[0].read_bytes())
    figures = document["figures"]
    assert figures["scenario"] == "versus" and figures["store"] == "sqlite"
    rows = {row["contender"]: row for row in document["rows"]}
    assert rows["steady"]["drain_jobs_per_s"] == 1000
    broker_drain = rows["broker (sqlite)"]["drain_jobs_per_s"]
    assert broker_drain > 0
    assert figures["broker (sqlite) / steady drain"] == round(broker_drain / 1000, 2)
    assert "| broker (sqlite) / steady drain |" in files[1].read_text()
