"""Prometheus metrics in the text exposition format (version 0.0.4).

Rendered by hand from the broker's own counters at scrape time, which costs
nothing on the hot path; ``tests/api/test_metrics.py`` parses the output with
``prometheus_client``'s parser to hold it to that format.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from .. import states

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> Iterable[str]:
        cumulative = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            cumulative += n
            yield f'{name}_bucket{{le="{_num(bound)}"}} {cumulative}'
        yield f'{name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{name}_sum {_num(self.sum)}"
        yield f"{name}_count {self.count}"


class Metrics:
    def __init__(self) -> None:
        self.latency = {route: Histogram() for route in ("claim", "ack", "heartbeat", "submit")}

    def render(self, snapshot: dict[str, Any]) -> bytes:
        """``snapshot`` holds the broker's figures (see ``Api.metrics_snapshot``)."""
        out: list[str] = []

        def family(name: str, kind: str, doc: str, samples: Iterable[str]) -> None:
            out.append(f"# HELP {name} {doc}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        live: list[int] = snapshot["state_counts"]
        family(
            "orchestrator_queue_depth",
            "gauge",
            "Jobs ready to be claimed.",
            [f"orchestrator_queue_depth {snapshot['queue_depth']}"],
        )
        family(
            "orchestrator_live_jobs",
            "gauge",
            "Live jobs by state.",
            [
                f'orchestrator_live_jobs{{state="{states.NAMES[s]}"}} {live[s]}'
                for s in (states.PENDING, states.READY, states.LEASED, states.BLOCKED)
            ],
        )
        family(
            "orchestrator_jobs_total",
            "counter",
            "Jobs that reached a terminal state.",
            [
                f'orchestrator_jobs_total{{state="{states.NAMES[s]}"}} {live[s]}'
                for s in (states.SUCCEEDED, states.DEAD, states.CANCELED)
            ],
        )
        for name, doc in (
            ("submitted", "Jobs accepted by submission."),
            ("claimed", "Jobs leased to workers."),
            ("acked", "Attempt results reported by workers."),
            ("lease_expiries", "Leases that expired without an ack."),
            ("rate_limited", "Requests refused with RATE_LIMITED."),
            ("backpressure", "Requests refused with BACKPRESSURE."),
            ("ledger_flushes", "Group commits written to the ledger."),
            ("ledger_failures", "Ledger writes that failed and were retried."),
            ("ledger_escaped", "Text fields a failed write escaped (a request check missed)."),
            ("ledger_purged", "Finished jobs deleted by the retention."),
            ("limited", "Claimed jobs held back by a quota, source limit or breaker."),
            ("events_published", "Events made for the event streams (GET /events)."),
        ):
            metric = f"orchestrator_{name}_total"
            family(metric, "counter", doc, [f"{metric} {snapshot[name]}"])
        family(
            "orchestrator_event_subscribers",
            "gauge",
            "Open event streams (GET /events).",
            [f"orchestrator_event_subscribers {snapshot['event_subscribers']}"],
        )
        family(
            "orchestrator_ledger_lag_seconds",
            "gauge",
            "Age of the oldest change not yet committed to the ledger.",
            [f"orchestrator_ledger_lag_seconds {_num(snapshot['ledger_lag_seconds'])}"],
        )
        family(
            "orchestrator_ledger_backlog_rows",
            "gauge",
            "Rows waiting to be written.",
            [f"orchestrator_ledger_backlog_rows {snapshot['ledger_backlog']}"],
        )
        family(
            "orchestrator_ledger_unfolded_rows",
            "gauge",
            "History rows written since the ledger's last upkeep step (compact).",
            [f"orchestrator_ledger_unfolded_rows {snapshot['ledger_unfolded']}"],
        )
        stats: dict[str, int] = snapshot["ledger_stats"]
        for figure, doc in (
            ("dead_tuples", "Dead tuples per ledger table (Postgres; vacuum takes them back)."),
            ("live_tuples", "Live tuples per ledger table (Postgres)."),
        ):
            samples = [
                f'orchestrator_ledger_{figure}{{table="{key.split(".")[0]}"}} {value}'
                for key, value in sorted(stats.items())
                if key.endswith(f".{figure}")
            ]
            if samples:
                family(f"orchestrator_ledger_{figure}", "gauge", doc, samples)
        family(
            "orchestrator_ledger_up",
            "gauge",
            "1 when the last ledger write succeeded.",
            [f"orchestrator_ledger_up {snapshot['ledger_up']}"],
        )
        for route, hist in self.latency.items():
            name = f"orchestrator_{route}_latency_seconds"
            family(name, "histogram", f"Latency of {route} requests.", hist.lines(name))
        out.append("")
        return "\n".join(out).encode()


def _num(value: float) -> str:
    return repr(float(value))
