"""GET /metrics: Prometheus text format, with figures that match what happened."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from broker.service import ServiceSettings

from .conftest import NOW_MS, SUBMIT, Api, MakeApi, job, rfc3339

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(api: Api) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, labels), and each sample name's family type."""
    await api.broker.flusher.commit([])
    async with api.client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples: Samples = {}
    kinds: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
            kinds[sample.name] = family.type
    return samples, kinds


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def histogram(samples: Samples, name: str) -> dict[str, Any]:
    buckets = sorted(
        (
            (float(dict(labels)["le"]), v)
            for (n, labels), v in samples.items()
            if n == f"{name}_bucket"
        ),
    )
    return {
        "buckets": buckets,
        "count": value(samples, f"{name}_count"),
        "sum": value(samples, f"{name}_sum"),
    }


async def test_metrics_parse_and_families_are_present(api: Api) -> None:
    samples, kinds = await scrape(api)
    for name, kind in {
        "orchestrator_queue_depth": "gauge",
        "orchestrator_jobs_total": "counter",
        "orchestrator_lease_expiries_total": "counter",
        "orchestrator_rate_limited_total": "counter",
        "orchestrator_ledger_lag_seconds": "gauge",
        "orchestrator_claim_latency_seconds_count": "histogram",
        "orchestrator_ack_latency_seconds_count": "histogram",
    }.items():
        assert kinds.get(name) == kind, (name, kinds.get(name))
    assert kinds["orchestrator_live_jobs"] == "gauge"
    assert value(samples, "orchestrator_queue_depth") == 0
    assert value(samples, "orchestrator_ledger_lag_seconds") == 0


async def test_metrics_match_what_happened(api: Api) -> None:
    await api.submit(
        *[job(payload=i) for i in range(5)],
        job(payload="later", notBefore=rfc3339(NOW_MS + 60_000)),
    )
    first = await api.claim(max_jobs=2, leaseSeconds=1)
    await api.advance(1_000)  # both leases expire; the jobs are ready again
    a, b, c = await api.claim(max_jobs=3)
    assert {first[0]["jobId"], first[1]["jobId"]} <= {a["jobId"], b["jobId"], c["jobId"]}
    await api.ack(
        {"jobId": a["jobId"], "leaseId": a["leaseId"], "status": "succeeded"},
        {
            "jobId": b["jobId"],
            "leaseId": b["leaseId"],
            "status": "failed",
            "error": {"retryable": False},
        },
        {"jobId": c["jobId"], "leaseId": c["leaseId"], "status": "canceled"},
    )
    samples, _ = await scrape(api)
    assert value(samples, "orchestrator_queue_depth") == 2
    assert value(samples, "orchestrator_live_jobs", state="ready") == 2
    assert value(samples, "orchestrator_live_jobs", state="pending") == 1
    assert value(samples, "orchestrator_live_jobs", state="leased") == 0
    assert value(samples, "orchestrator_jobs_total", state="succeeded") == 1
    assert value(samples, "orchestrator_jobs_total", state="dead") == 1
    assert value(samples, "orchestrator_jobs_total", state="canceled") == 1
    assert value(samples, "orchestrator_submitted_total") == 6
    assert value(samples, "orchestrator_claimed_total") == 5
    assert value(samples, "orchestrator_acked_total") == 3
    assert value(samples, "orchestrator_lease_expiries_total") == 2
    assert value(samples, "orchestrator_rate_limited_total") == 0
    assert value(samples, "orchestrator_backpressure_total") == 0
    assert value(samples, "orchestrator_ledger_lag_seconds") == 0
    assert value(samples, "orchestrator_ledger_up") == 1
    assert value(samples, "orchestrator_ledger_flushes_total") >= 1

    claim = histogram(samples, "orchestrator_claim_latency_seconds")
    ack = histogram(samples, "orchestrator_ack_latency_seconds")
    assert claim["count"] == 2 and ack["count"] == 1
    for hist in (claim, ack):
        bounds = [b for b, _ in hist["buckets"]]
        counts = [n for _, n in hist["buckets"]]
        assert bounds[-1] == float("inf") and counts[-1] == hist["count"]
        assert counts == sorted(counts)  # cumulative
        assert hist["sum"] > 0


async def test_refusals_do_not_count_as_work(api: Api) -> None:
    status, _ = await api.post(SUBMIT, {"jobs": [job("BAD")]})
    assert status == 400
    samples, _ = await scrape(api)
    assert value(samples, "orchestrator_submitted_total") == 0
    assert value(samples, "orchestrator_queue_depth") == 0


async def test_backpressure_is_counted(make_api: MakeApi) -> None:
    api = await make_api(service=ServiceSettings(max_backlog=0))
    status, _ = await api.post(SUBMIT, {"jobs": [job()]})
    assert status == 503
    samples, _ = await scrape(api)
    assert value(samples, "orchestrator_backpressure_total") == 1
