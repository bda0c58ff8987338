"""The broker against peer job queues, interleaved: ratios from one sitting.

The peers (graphile-worker, beanstalkd, NATS JetStream, PgQueuer, …) run in
the anchors harness, a writable copy of ``../shared/peers`` set up with its
``setup.sh``. Its ``peers/run_peers.py --only NAME --runs 1 --n N`` enqueues N
no-op jobs in bulk, drains them (claim + ack) and leaves the figures in
``results/raw/peers.json``. A round runs every peer once, then a burn-down of
the same N jobs on each broker store. The machine's speed drifts by up to 1.8x
within minutes, so a ratio is taken between figures of the same round, and
its median over the rounds is reported beside each side's own medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from .common import Json, Result

#: what a contender did in one round: enqueue and drain, jobs/s
Round = dict[str, float]


def check_harness(peers_dir: Path) -> None:
    """Refuse at once, before anything runs, a directory that is not a set-up harness."""
    for needed in ("peers/run_peers.py", ".venv/bin/python"):
        if not (peers_dir / needed).exists():
            raise SystemExit(
                f"{peers_dir}/{needed} is missing: copy ../shared/peers somewhere writable "
                "and run its setup.sh first"
            )


def run_peer(peers_dir: Path, name: str, jobs: int, timeout_s: float = 900) -> Round:
    """One round of one peer through the harness."""
    argv = [str(peers_dir / ".venv/bin/python"), "peers/run_peers.py"]
    argv += ["--only", name, "--runs", "1", "--n", str(jobs)]
    done = subprocess.run(argv, cwd=peers_dir, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"peer {name}: exit {done.returncode}: {done.stderr[-800:]}")
    document = orjson.loads((peers_dir / "results/raw/peers.json").read_bytes())
    entry = next((p for p in document["peers"] if p["name"] == name), None)
    if entry is None:
        raise RuntimeError(f"peer {name}: unknown to the harness")
    if entry["error"] or not entry["all_ok"] or not entry["runs_detail"]:
        raise RuntimeError(f"peer {name}: {entry['error'] or 'did not handle every job'}")
    if entry["n"] != jobs:  # the harness fixes N for some peers (arq_defaults: 500)
        raise RuntimeError(f"peer {name}: the harness ran {entry['n']:,} jobs, not {jobs:,}")
    run = entry["runs_detail"][0]
    return {"enqueue": run["enqueue_jobs_per_s"], "drain": run["drain_jobs_per_s"]}


def versus(
    peers_dir: Path,
    peers: Sequence[str],
    stores: Sequence[str | None],
    jobs: int,
    rounds: int,
    burn: Callable[[str | None], Result],
    peer_round: Callable[[Path, str, int], Round] = run_peer,
) -> Result:
    """``rounds`` rounds of every peer, then a burn-down on each store (``burn``)."""
    brokers = broker_names(stores)
    seen: dict[str, list[Round]] = {name: [] for name in [*peers, *brokers]}
    for r in range(1, rounds + 1):
        for name in peers:
            seen[name].append(peer_round(peers_dir, name, jobs))
            _progress(r, rounds, name, seen[name][-1])
        for name, store in brokers.items():
            measured = burn(store).figures
            seen[name].append(
                {"enqueue": measured["submit_jobs_per_s"], "drain": measured["drain_jobs_per_s"]}
            )
            _progress(r, rounds, name, seen[name][-1])
    rows = [_row(name, found) for name, found in seen.items()]
    figures: Json = {"scenario": "versus", "store": ",".join(map(store_name, stores))}
    figures |= {"jobs": jobs, "rounds": rounds, "peers": ",".join(peers)}
    for name in brokers:
        for peer in peers:
            for kind in ("drain", "enqueue"):
                figures[f"{name} / {peer} {kind}"] = same_round_ratio(seen[name], seen[peer], kind)
    return Result("versus", figures, rows=rows)


def broker_names(stores: Sequence[str | None]) -> dict[str, str | None]:
    """A contender's name per store: ``broker (sqlite)``, ``broker (postgresql)``, and
    ``broker (postgresql 2)`` for a second store of the same kind."""
    names: dict[str, str | None] = {}
    for store in stores:
        name, n = f"broker ({store_name(store)})", 1
        while name in names:
            n += 1
            name = f"broker ({store_name(store)} {n})"
        names[name] = store
    return names


def store_name(store: str | None) -> str:
    return "sqlite" if store is None else store.split(":")[0]


def same_round_ratio(mine: list[Round], theirs: list[Round], kind: str) -> float:
    """Median over the rounds of mine / theirs, each ratio within one round."""
    ratios = [a[kind] / b[kind] for a, b in zip(mine, theirs, strict=True)]
    return round(statistics.median(ratios), 2)


def _row(name: str, found: list[Round]) -> Json:
    drains = [r["drain"] for r in found]
    return {
        "contender": name,
        "enqueue_jobs_per_s": round(statistics.median(r["enqueue"] for r in found)),
        "drain_jobs_per_s": round(statistics.median(drains)),
        "drain_min": round(min(drains)),
        "drain_max": round(max(drains)),
    }


def _progress(r: int, rounds: int, name: str, figures: Round) -> None:
    print(
        f"versus  round {r}/{rounds}  {name}: enqueue {figures['enqueue']:,.0f}/s,"
        f" drain {figures['drain']:,.0f}/s",
        file=sys.stderr,
    )
