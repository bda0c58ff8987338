"""Claim + complete with limits on every tenant and source, against no limits.

    python -m bench.flow_limits [--jobs 200000] [--tenants 1000] [--hosts-per-tenant 10]

Jobs are spread over ``--tenants`` tenants, each with ``--hosts-per-tenant``
source hosts of its own (1,000 × 10 = 10,000 by default), in turn; workers claim
100 of one tenant's jobs at a time (as tokens make them do over HTTP) and
complete them in one call. With limits, every (tenant, job type) has a quota and
every (tenant, source) a source limit (rate, burst, max active) set high enough
that they never refuse, so the figure prices checking them (and the breakers
watching every source), not waiting on them. Both runs in one process, native
kernels.
"""

from __future__ import annotations

import argparse
import time

from bench.engine_setup import kernels
from broker.engine import Engine, JobMeta, JobSpec
from broker.engine.limits import Quota, Source

TYPE = "fetch"


def build(jobs: int, tenants: int, hosts: int, limited: bool) -> Engine:
    engine = Engine(kernels=kernels("native"))
    per_tenant = jobs // tenants
    for t in range(tenants):
        tenant = f"tenant-{t}"
        metas = [JobMeta(source_host=f"h{t * hosts + k}.example") for k in range(hosts)]
        specs = [JobSpec(TYPE, b"", meta=metas[i % hosts]) for i in range(per_tenant)]
        engine.submit(0, tenant, specs)
        if not limited:
            continue
        engine.set_limit(0, tenant, "quota", TYPE, Quota(max_active=10_000, per_hour=10**9))
        for meta in metas:
            source = Source(rate=1e6, burst=10**6, max_active=10_000)
            engine.set_limit(0, tenant, "source", meta.source_host, source)
    return engine


def drain(engine: Engine, tenants: int) -> float:
    """Workers as over HTTP: each claim is one tenant's (its token's), 100 jobs,
    completed in one call; tenants take turns until every queue is empty."""
    names = [f"tenant-{t}" for t in range(tenants)]
    done = 0
    start = time.perf_counter()
    busy = True
    while busy:
        busy = False
        for tenant in names:
            grant, _ = engine.claim(1, tenant, "worker", [TYPE], 100, 60_000)
            if grant.jobs:
                busy = True
                engine.complete(2, tenant, [job.jid for job in grant.jobs], grant.tokens)
                done += len(grant.jobs)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--hosts-per-tenant", type=int, default=10)
    args = parser.parse_args()
    rates = {}
    for limited in (False, True, False, True):
        engine = build(args.jobs, args.tenants, args.hosts_per_tenant, limited)
        rates.setdefault(limited, []).append(drain(engine, args.tenants))
        assert not engine.limits.parked_jids and len(engine.jobs) == 0
    free, capped = max(rates[False]), max(rates[True])
    print(f"unlimited: {free:,.0f} jobs/s  (runs: {', '.join(f'{r:,.0f}' for r in rates[False])})")
    print(f"limited:   {capped:,.0f} jobs/s  (runs: {', '.join(f'{r:,.0f}' for r in rates[True])})")
    print(f"limited / unlimited: {capped / free:.2f}")


if __name__ == "__main__":
    main()
