"""Writing results: a JSON file, a Markdown table and, with ``--plot``, PNG figures."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from .common import Result


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count() or 0} cores, Python {platform.python_version()}"


def stem(out: Path, scenario: str) -> Path:
    """``OUT/<scenario>-<timestamp>``, with a suffix if that name is taken."""
    base = f"{scenario}-{time.strftime('%Y%m%dT%H%M%S')}"
    path, n = out / base, 1
    while path.with_suffix(".json").exists():
        n += 1
        path = out / f"{base}-{n}"
    return path


def markdown(result: Result) -> str:
    lines = [f"# {result.scenario}", "", "| figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in result.figures.items()]
    rows = result.rows[: result.md_rows] if result.md_rows else result.rows
    if rows:
        columns = list(rows[0])
        lines += ["", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
        if len(rows) < len(result.rows):
            lines += ["", f"({len(rows)} of {len(result.rows)} rows; all are in the JSON file)"]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write(result: Result, out: Path) -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.md``; print the table to stdout."""
    out.mkdir(parents=True, exist_ok=True)
    result.figures["machine"] = machine()
    path = stem(out, result.scenario)
    document = {"figures": result.figures, "rows": result.rows}
    json_file, md_file = path.with_suffix(".json"), path.with_suffix(".md")
    json_file.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    table = markdown(result)
    md_file.write_text(table)
    print(table)
    print(f"written {json_file} and {md_file.name}")
    return [json_file, md_file]


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_batches(result: Result, path: Path) -> Path:
    """Burn-down throughput against the claim batch size (one point per run)."""
    plt = _pyplot()
    batches = [row["batch"] for row in result.rows]
    rates = [row["drain_jobs_per_s"] for row in result.rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(batches, rates, marker="o")
    for x, y in zip(batches, rates, strict=True):
        ax.annotate(f"{y:,}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xscale("log")
    ax.set_xticks(batches, labels=[f"{b:,}" for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("claim batch size (jobs per ack-and-claim)")
    ax.set_ylabel("drain throughput (jobs/s)")
    f = result.figures
    ax.set_title(f"burn-down: {f['jobs']:,} jobs, {f['workers']} workers, {f['store']}")
    ax.set_ylim(0, max(rates, default=1) * 1.15)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_cdf(series: Mapping[str, Sequence[float]], title: str, path: Path) -> Path:
    """Empirical CDFs (milliseconds, log x axis) of each named series."""
    plt = _pyplot()
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in series.items():
        ordered = sorted(v for v in values if v > 0)
        if ordered:
            n = len(ordered)
            ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=name)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.LogFormatter())
    ax.xaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("fraction of jobs")
    ax.set_ylim(0, 1.0)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
