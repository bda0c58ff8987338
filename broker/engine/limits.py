"""Flow control: which popped jobs may be leased now, and what holds the rest.

Two kinds of limits, kept where they cost least:

* per (tenant, job type), a **quota**: paused, ``max_active`` in flight,
  ``per_hour`` with a ``burst``. Every job of such a queue is limited alike, so
  a quota holds the whole ready queue (the ready-queue kernel skips held
  queues): no job is looked at again until the quota can admit one.
* per (tenant, source host), a **source**: paused, a token bucket (rate, burst;
  cut on an upstream 429, recovering on successes), a temporary throttle,
  blackout windows, ``max_active``; and a circuit breaker per (tenant, job
  type, source). Jobs of many sources share a queue, so a limited source's
  jobs are *parked* here (still ``ready``, out of the queue, in order) and go
  back to the head of their queues when the source can take them.

Order of the checks: gates that take nothing (pause, blackout, open breaker),
then tokens, then concurrency slots, then a half-open breaker's probe; a job
refused at a step gives back what the steps before it took, so a job held
back by a rate limit never holds a concurrency slot. Nothing here is
persisted but the configuration: after a restart parked jobs are simply
ready, and slots in use are counted again from the leased jobs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from .breakers import BreakerSettings, CircuitBreakers
from .interner import Interner
from .job import Job

DAY_MS = 86_400_000
PROBE_WAIT_MS = 1_000  # a half-open breaker with its probes out: look again after this
_UNLIMITED = -1
_KEY_SHIFT = 31  # tenant and job type / source ids are interned below 2**31


@dataclass(frozen=True, slots=True)
class Quota:
    """Limits of one (tenant, job type)."""

    max_active: int | None = None
    per_hour: int | None = None
    burst: int | None = None  # tokens a quiet hour can save up; default per_hour
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Blackout:
    """No dispatch from ``start`` to ``end`` (ms since the epoch); with ``daily``
    both are ms into the day (UTC) and the window recurs every day (it may wrap
    past midnight)."""

    start: int
    end: int
    daily: bool = False

    def covers(self, now: int) -> bool:
        if not self.daily:
            return self.start <= now < self.end
        t = now % DAY_MS
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def ends_after(self, now: int) -> int:
        """When the window that covers ``now`` ends (ms since the epoch)."""
        if not self.daily:
            return self.end
        day = now - now % DAY_MS
        end = day + self.end
        return end if end > now else end + DAY_MS


@dataclass(frozen=True, slots=True)
class Source:
    """Limits of one (tenant, source host). Rates are in tokens per second."""

    rate: float | None = None
    burst: int | None = None  # default: one second's worth, at least 1
    max_active: int | None = None
    paused: bool = False
    throttle_rate: float | None = None  # a temporary rate, until throttle_until (ms)
    throttle_until: int = 0
    blackouts: tuple[Blackout, ...] = field(default_factory=tuple)

    def rate_at(self, now: int) -> float | None:
        if self.throttle_rate is not None and now < self.throttle_until:
            return self.throttle_rate if self.rate is None else min(self.rate, self.throttle_rate)
        return self.rate

    def blackout_end(self, now: int) -> int:
        """The end of the blackout covering ``now``, 0 when none does."""
        if not self.blackouts:
            return 0
        return max((b.ends_after(now) for b in self.blackouts if b.covers(now)), default=0)


class BucketState(NamedTuple):
    """A source bucket's adaptive state, kept in the ledger while 429s hold it below
    its configured rate, so that a restart does not forget an upstream's limit."""

    rate: int  # milli-tokens per second
    paused_until: int  # ms
    penalties: int


def _milli(rate: float) -> int:
    return max(1, round(rate * 1000))


def _pack(high: int, low: int) -> int:
    return high << _KEY_SHIFT | low


def _unpack(key: int) -> tuple[int, int]:
    return key >> _KEY_SHIFT, key & ((1 << _KEY_SHIFT) - 1)


def _count_in(counters: Any, key: int, limit: int) -> None:
    """Count one job in flight even past ``limit`` (it is leased already)."""
    counters.set_limit(key, _UNLIMITED)
    counters.acquire(key, 1)
    counters.set_limit(key, limit)


def _breaker_park(skey: int, jtype: int) -> int:
    """Where jobs wait on one (tenant, job type, source) breaker: negative keys,
    beside the source keys (a breaker holds back its job type only)."""
    return -((skey << _KEY_SHIFT | jtype) + 1)


@dataclass(slots=True)
class _Plan:
    """What one claim's jobs need, per key, for ``FlowControl._admit_all``."""

    quota_tokens: dict[int, int] = field(default_factory=dict)
    source_tokens: dict[int, int] = field(default_factory=dict)
    quota_slots: dict[int, int] = field(default_factory=dict)
    source_slots: dict[int, int] = field(default_factory=dict)

    def add_quota(self, qkey: int, quota: Quota | None, n: int) -> int:
        """Count ``n`` jobs against their quota; the quota slot key each holds, or -1."""
        if quota is None:
            return -1
        if quota.per_hour is not None:
            self.quota_tokens[qkey] = self.quota_tokens.get(qkey, 0) + n
        if quota.max_active is None:
            return -1
        self.quota_slots[qkey] = self.quota_slots.get(qkey, 0) + n
        return qkey

    def add_source(self, skey: int, source: Source, n: int) -> None:
        if source.rate is not None:
            self.source_tokens[skey] = self.source_tokens.get(skey, 0) + n
        if source.max_active is not None:
            self.source_slots[skey] = self.source_slots.get(skey, 0) + n


class FlowControl:
    """The engine's limits. ``active`` is False while nothing is configured, so
    the engine's claim path skips this module entirely."""

    def __init__(self, kernels: Any, breaker_settings: BreakerSettings | None = None) -> None:
        self.quotas: dict[tuple[int, int], Quota] = {}
        self.sources: dict[tuple[int, int], Source] = {}
        self.source_ids = Interner()
        self.quota_rate = kernels.TokenBuckets()
        # a 429 cuts a source's rate to 4/5 (the kernel's default halves it): with
        # retry-after 0 that converges on an upstream's hidden limit within 20 %
        # where halving undershoots it by a quarter (tests/unit/test_flow_kernels.py)
        self.source_rate = kernels.TokenBuckets(decrease_permille=800)
        self.quota_slots = kernels.ConcurrencyCounters()
        self.source_slots = kernels.ConcurrencyCounters()
        self.breakers = CircuitBreakers(breaker_settings or BreakerSettings())
        #: held queues: quota key -> when to look again (ms), -1: when a slot frees
        self.held: dict[int, int] = {}
        #: parked jobs per source key (in the order they were popped), and when
        #: to look again (ms), -1: when a slot frees or the source resumes
        self.parked: dict[int, deque[Job]] = {}
        self.parked_until: dict[int, int] = {}
        self.parked_jids: set[int] = set()
        #: leased jobs that hold slots or a probe: jid -> (quota key, source key, breaker key)
        #: jid -> (quota slot key or -1, source key or -1, holds a source slot, breaker key or -1)
        self.holding: dict[int, tuple[int, int, bool, int]] = {}
        #: (tenant, job type) queues the engine must hold in its ready queues now
        self.to_hold: list[tuple[int, int]] = []
        self.refused = 0  # jobs a claim found limited (counted for metrics)
        #: breakers that opened, (when, breaker key), for the engine's incident records
        self.incidents: list[tuple[int, int]] = []
        #: source keys whose bucket 429s slowed: their adaptive state is kept in the ledger
        self.slowed: set[int] = set()
        #: (when, source key) whose kept state changed (slowed again, or let go), to record
        self.bucket_changes: list[tuple[int, int]] = []

    @property
    def active(self) -> bool:
        return bool(self.quotas or self.sources)

    # -- configuration ------------------------------------------------------------
    def set_quota(self, tid: int, jtype: int, quota: Quota | None, now: int) -> None:
        key = _pack(tid, jtype)
        if quota is None:
            self.quotas.pop((tid, jtype), None)
            self.quota_rate.remove(key)
            self.quota_slots.set_limit(key, _UNLIMITED)
        else:
            self.quotas[(tid, jtype)] = quota
            if quota.per_hour is None:
                self.quota_rate.remove(key)
            else:
                burst = quota.burst if quota.burst is not None else max(1, quota.per_hour)
                self.quota_rate.configure(key, max(1, quota.per_hour * 1000 // 3600), burst, now)
            limit = _UNLIMITED if quota.max_active is None else quota.max_active
            self.quota_slots.set_limit(key, limit)
        self.held[key] = now  # look again at once

    def set_source(self, tid: int, host: str, source: Source | None, now: int) -> None:
        sid = self.source_ids.id(host)
        key = _pack(tid, sid)
        if source is None:
            self.sources.pop((tid, sid), None)
            self.source_rate.remove(key)
            self.source_slots.set_limit(key, _UNLIMITED)
            self._let_go(now, key)
        else:
            known = self.sources.get((tid, sid))
            self.sources[(tid, sid)] = source
            # a pause, a blackout or a slot limit leaves a 429's slow-down in place
            if known is None or (known.rate_at(now), known.burst) != (
                source.rate_at(now),
                source.burst,
            ):
                self._configure_rate(key, source, now)
            limit = _UNLIMITED if source.max_active is None else source.max_active
            self.source_slots.set_limit(key, limit)
        if key in self.parked:
            self.parked_until[key] = now

    def _configure_rate(self, key: int, source: Source, now: int) -> None:
        self._let_go(now, key)  # a new rate starts afresh
        rate = source.rate_at(now)
        if rate is None:
            self.source_rate.remove(key)
            return
        burst = source.burst if source.burst is not None else max(1, round(rate))
        self.source_rate.configure(key, _milli(rate), burst, now)

    def source_key(self, tid: int, host: str | None) -> int:
        if host is None:
            return -1
        sid = self.source_ids.find(host)
        return -1 if sid < 0 else _pack(tid, sid)

    # -- claiming -------------------------------------------------------------------
    def admit(self, now: int, jobs: list[Job], requeue: Callable[[list[Job]], None]) -> list[Job]:
        """The popped ``jobs`` that may be leased now (their slots and probes
        taken); the rest are parked or put back, their queues held."""
        if self._admit_all(now, jobs):
            return jobs
        admitted: list[Job] = []
        back: list[Job] = []  # to the head of their queues, in popped order
        held = self.held
        parked_until = self.parked_until
        # a claim's jobs share a few (tenant, host) pairs: look each one's key up once
        source_keys: dict[tuple[int, str | None], int] = {}
        # no breaker stored: none is open or half-open, and admitting cannot store one
        watch = len(self.breakers) > 0
        for job in jobs:
            qkey = job.tenant << _KEY_SHIFT | job.jtype
            if qkey in held:
                back.append(job)
                continue
            meta = job.meta
            host = None if meta is None else meta.source_host
            skey = source_keys.get((job.tenant, host))
            if skey is None:
                skey = source_keys[(job.tenant, host)] = self.source_key(job.tenant, host)
            if skey >= 0 and skey in parked_until:  # -1: no source (a breaker park key can be -1)
                self._park(skey, job)
                continue
            bpark = _breaker_park(skey, job.jtype)  # meaningful only with a source
            if skey >= 0 and bpark in parked_until:
                self._park(bpark, job)
                continue
            verdict = self._take(now, job, qkey, skey, watch)
            if verdict is None:
                admitted.append(job)
            elif verdict == "quota":
                back.append(job)
            else:
                self._park(bpark if verdict == "breaker" else skey, job)
            if verdict is not None:
                self.refused += 1
        if back:
            requeue(back)
        return admitted

    def _admit_all(self, now: int, jobs: list[Job]) -> bool:
        """The common case in one pass: when every job may go, take what they all
        need per key with the kernels' batch calls (one call per kind of limit,
        not four per job) and say True. When anything would refuse one of them,
        or a gate needs a closer look (a pause, a blackout, a throttle, a stored
        breaker, a held queue, a parked source), give back what was taken and
        say False: the job-by-job path then decides exactly as if this had not
        run (a take undone by a refund, an acquire by a release, at the same
        ``now``, leaves every bucket and counter as it was)."""
        # a claim's jobs fall in a few (tenant, job type, host) groups: plan per group
        counts: dict[tuple[int, int, str | None], int] = {}
        groups = []
        for job in jobs:
            meta = job.meta
            group = (job.tenant, job.jtype, None if meta is None else meta.source_host)
            counts[group] = counts.get(group, 0) + 1
            groups.append(group)
        plan = _Plan()
        holds = {}
        for group, n in counts.items():
            hold = self._plan_group(plan, group, n)
            if hold is None:
                return False
            holds[group] = hold
        steps = (
            (self.quota_rate, plan.quota_tokens),
            (self.source_rate, plan.source_tokens),
            (self.quota_slots, plan.quota_slots),
            (self.source_slots, plan.source_slots),
        )
        done: list[tuple[Any, list[int], list[int]]] = []
        for kernel, need in steps:
            if not need:
                continue
            keys = list(need)
            wanted = list(need.values())
            if kernel is self.quota_rate or kernel is self.source_rate:
                granted = kernel.take_many(keys, wanted, now)[::2]
            else:
                granted = kernel.acquire_many(keys, wanted)
            done.append((kernel, keys, granted))
            if granted != wanted:
                self._undo(now, done)
                return False
        holding = self.holding
        for job, group in zip(jobs, groups, strict=True):
            hold = holds[group]
            if hold[0] >= 0 or hold[1] >= 0:
                holding[job.jid] = hold
        return True

    def _plan_group(
        self, plan: _Plan, group: tuple[int, int, str | None], n: int
    ) -> tuple[int, int, bool, int] | None:
        """Add what ``n`` jobs of one (tenant, job type, host) need to ``plan``: what
        each will hold once leased, or None when they need a closer look."""
        tid, jtype, host = group
        qkey = tid << _KEY_SHIFT | jtype
        if qkey in self.held:
            return None
        skey = self.source_key(tid, host)
        parked = self.parked_until
        if skey >= 0 and (skey in parked or _breaker_park(skey, jtype) in parked):
            return None
        quota = self.quotas.get((tid, jtype))
        if quota is not None and quota.paused:
            return None
        source = self.sources.get(_unpack(skey)) if skey >= 0 else None
        if source is not None and (
            source.paused
            or source.blackouts
            or source.throttle_rate is not None
            or (skey << _KEY_SHIFT | jtype) in self.breakers  # open, half-open or counting
        ):
            return None
        quota_slot = plan.add_quota(qkey, quota, n)
        if source is None:
            return (quota_slot, -1, False, -1)
        plan.add_source(skey, source, n)
        return (quota_slot, skey, source.max_active is not None, skey << _KEY_SHIFT | jtype)

    def _undo(self, now: int, done: list[tuple[Any, list[int], list[int]]]) -> None:
        for kernel, keys, granted in done:
            if kernel is self.quota_rate or kernel is self.source_rate:
                for key, n in zip(keys, granted, strict=True):
                    kernel.refund(key, n, now)
            else:
                kernel.release_many(keys, granted)

    def _source_of(self, job: Job) -> int:
        meta = job.meta
        if meta is None or meta.source_host is None:
            return -1
        return self.source_key(job.tenant, meta.source_host)

    def _take(self, now: int, job: Job, qkey: int, skey: int, watch: bool = True) -> str | None:
        """Take what one job needs, all or nothing; None, or what refused it.
        Only what is configured is consulted (a kernel call costs even when it
        would grant everything)."""
        quota = self.quotas.get((job.tenant, job.jtype))
        source = self.sources.get(_unpack(skey)) if skey >= 0 else None
        if quota is not None and quota.paused:
            self._hold(qkey, -1)
            return "quota"
        bkey = -1
        if source is not None:
            if (source.paused or source.blackouts) and self._source_closed(now, skey, source):
                return "source"
            if source.throttle_rate is not None:
                source = self._unthrottle(now, skey, source)
            bkey = skey << _KEY_SHIFT | job.jtype  # breakers watch configured sources
            if watch and self.breakers.is_open(bkey, now):
                self.parked_until[_breaker_park(skey, job.jtype)] = self.breakers.reopens_at(bkey)
                return "breaker"
        else:
            skey = -1
        taken: list[tuple[Any, int]] = []  # (kernel, key) of tokens and slots taken so far
        verdict = self._take_all(now, job, qkey, skey, quota, source, taken)
        if verdict is None and watch and bkey >= 0 and not self.breakers.allow(bkey, now):
            # a half-open breaker's probes are out: look again a little later
            self.parked_until[_breaker_park(skey, job.jtype)] = now + PROBE_WAIT_MS
            verdict = "breaker"
        if verdict is not None:
            self._give_back(now, taken)
            return verdict
        quota_slot = qkey if quota is not None and quota.max_active is not None else -1
        source_slot = source is not None and source.max_active is not None
        if quota_slot >= 0 or skey >= 0:  # else finishing it has nothing to give back
            self.holding[job.jid] = (quota_slot, skey, source_slot, bkey)
        return None

    def _take_all(
        self,
        now: int,
        job: Job,
        qkey: int,
        skey: int,
        quota: Quota | None,
        source: Source | None,
        taken: list[tuple[Any, int]],
    ) -> str | None:
        """Tokens first, then slots: a job refused by a rate never holds a slot."""
        if quota is not None and quota.per_hour is not None:
            granted, wait = self.quota_rate.take(qkey, 1, now)
            if not granted:
                self._hold(qkey, now + max(1, wait))
                return "quota"
            taken.append((self.quota_rate, qkey))
        # after _unthrottle, a source has a rate now exactly when either rate is set
        if source is not None and (source.rate is not None or source.throttle_rate is not None):
            granted, wait = self.source_rate.take(skey, 1, now)
            if not granted:
                self.parked_until[skey] = now + max(1, wait)
                return "source"
            taken.append((self.source_rate, skey))
        if quota is not None and quota.max_active is not None:
            if not self.quota_slots.acquire(qkey, 1):
                self._hold(qkey, -1)
                return "quota"
            taken.append((self.quota_slots, qkey))
        if source is not None and source.max_active is not None:
            if not self.source_slots.acquire(skey, 1):
                self.parked_until[skey] = -1
                return "source"
            taken.append((self.source_slots, skey))
        return None

    def _give_back(self, now: int, taken: list[tuple[Any, int]]) -> None:
        for kernel, key in taken:
            if kernel is self.quota_rate or kernel is self.source_rate:
                kernel.refund(key, 1, now)
            else:
                kernel.release(key, 1)

    def _unthrottle(self, now: int, skey: int, source: Source) -> Source:
        """A throttle that expired: back to the configured rate."""
        if source.throttle_rate is None or now < source.throttle_until:
            return source
        plain = replace(source, throttle_rate=None, throttle_until=0)
        self.sources[_unpack(skey)] = plain
        self._configure_rate(skey, plain, now)
        return plain

    def adopt(self, leased: Iterable[Job]) -> None:
        """Count leased jobs in the slots of limits set after they were leased
        (a new limit, a restart), so in-flight figures and limits see them."""
        for job in leased:
            qkey = _pack(job.tenant, job.jtype)
            skey = self._source_of(job)
            quota = self.quotas.get((job.tenant, job.jtype))
            source = self.sources.get(_unpack(skey)) if skey >= 0 else None
            quota_slot, held_skey, source_slot, bkey = self.holding.get(
                job.jid, (-1, -1, False, -1)
            )
            if quota_slot < 0 and quota is not None and quota.max_active is not None:
                _count_in(self.quota_slots, qkey, quota.max_active)
                quota_slot = qkey
            if source is not None:
                held_skey = skey
                bkey = skey << _KEY_SHIFT | job.jtype
                if not source_slot and source.max_active is not None:
                    _count_in(self.source_slots, skey, source.max_active)
                    source_slot = True
            if quota_slot >= 0 or held_skey >= 0:
                self.holding[job.jid] = (quota_slot, held_skey, source_slot, bkey)

    def _hold(self, qkey: int, until: int) -> None:
        self.held[qkey] = until
        self.to_hold.append(_unpack(qkey))

    def _source_closed(self, now: int, skey: int, source: Source) -> bool:
        if source.paused:
            self.parked_until[skey] = -1
            return True
        end = source.blackout_end(now)
        if end:
            self.parked_until[skey] = end
            return True
        return False

    def _park(self, skey: int, job: Job) -> None:
        self.parked.setdefault(skey, deque()).append(job)
        self.parked_jids.add(job.jid)

    # -- finishing ------------------------------------------------------------------
    def succeeded(self, now: int, jobs: Iterable[Job]) -> None:
        """``finished(now, job, "succeeded")`` for many jobs, with one kernel call per
        kind of limit: releasing n slots of a key, or rewarding its bucket for n
        successes, is the same as doing it n times."""
        holding = self.holding
        breakers = self.breakers
        verdicts: list[tuple[int, int]] = []
        slots: dict[int, int] = {}
        source_slots: dict[int, int] = {}
        rewards: dict[int, int] = {}
        for job in jobs:
            held = holding.pop(job.jid, None)
            if held is None:
                continue
            quota_slot, skey, source_slot, bkey = held
            if bkey >= 0 and bkey in breakers:  # a stored breaker counts every outcome
                verdicts.append((bkey, skey))
            if quota_slot >= 0:
                slots[quota_slot] = slots.get(quota_slot, 0) + 1
            if skey >= 0:
                rewards[skey] = rewards.get(skey, 0) + 1
                if source_slot:
                    source_slots[skey] = source_slots.get(skey, 0) + 1
        self._release(now, slots, source_slots)
        for key, n in rewards.items():
            self.source_rate.reward(key, n, now)
            self._recovered(now, key)
        for bkey, skey in verdicts:
            self._verdict(now, bkey, skey, "succeeded")

    def _release(self, now: int, slots: dict[int, int], source_slots: dict[int, int]) -> None:
        """Free slots by key; a queue or source waiting for one may go on at once."""
        if slots:
            self.quota_slots.release_many(list(slots), list(slots.values()))
            for key in slots:
                if self.held.get(key) == -1:
                    self.held[key] = now
        if source_slots:
            self.source_slots.release_many(list(source_slots), list(source_slots.values()))
            for key in source_slots:
                if self.parked_until.get(key) == -1:
                    self.parked_until[key] = now

    def finished(self, now: int, job: Job, outcome: str, retry_after_ms: int = 0) -> None:
        """A leased job's attempt ended: free its slots, tell its breaker and bucket.

        ``outcome``: "succeeded", "failed", "throttled" (an upstream 429 or a
        retry-after: the source's rate is cut), or "canceled" (no verdict)."""
        held = self.holding.pop(job.jid, None)
        if held is None:
            return
        quota_slot, skey, source_slot, bkey = held
        if quota_slot >= 0:
            self.quota_slots.release(quota_slot, 1)
            if self.held.get(quota_slot) == -1:
                self.held[quota_slot] = now  # a slot freed: the queue may go on
        if skey >= 0:
            if source_slot:
                self.source_slots.release(skey, 1)
                if self.parked_until.get(skey) == -1:
                    self.parked_until[skey] = now
            if outcome == "throttled":
                if self.source_rate.penalise(skey, now, retry_after_ms):
                    self.slowed.add(skey)
                    self.bucket_changes.append((now, skey))
            elif outcome == "succeeded":
                self.source_rate.reward(skey, 1, now)
                self._recovered(now, skey)
        # a success for a key with no breaker stored changes nothing (see CircuitBreakers.record)
        if bkey >= 0 and (outcome != "succeeded" or bkey in self.breakers):
            self._verdict(now, bkey, skey, outcome)

    def _verdict(self, now: int, bkey: int, skey: int, outcome: str) -> None:
        """Tell a breaker how an attempt ended."""
        if outcome == "canceled":
            self.breakers.forget(bkey, now)
            return
        flipped = self.breakers.record(bkey, now, outcome == "succeeded")
        if flipped == "opened":
            self.incidents.append((now, bkey))
        elif flipped == "closed":
            park = -(bkey + 1)
            if park in self.parked_until:
                self.parked_until[park] = now  # closed: its parked jobs may go at once

    # -- adaptive state kept across restarts ------------------------------------------
    def bucket_state(self, skey: int, now: int) -> BucketState | None:
        """What the ledger keeps of a slowed bucket (None: nothing, it is not slowed)."""
        state = self.source_rate.state(skey, now) if skey in self.slowed else None
        return None if state is None else BucketState(state[1], state[4], state[5])

    def restore_bucket(self, tid: int, host: str, kept: BucketState) -> None:
        """Put a kept adaptive state back (after the source's limit was restored)."""
        key = self.source_key(tid, host)
        if key >= 0 and self.source_rate.restore(key, *kept):
            self.slowed.add(key)

    def _recovered(self, now: int, key: int) -> None:
        """Back at its configured rate and not paused: nothing left to keep."""
        if key in self.slowed:
            state = self.source_rate.state(key, now)
            if state is None or (state[1] >= state[0] and state[4] <= now):
                self._let_go(now, key)

    def _let_go(self, now: int, key: int) -> None:
        if key in self.slowed:
            self.slowed.discard(key)
            self.bucket_changes.append((now, key))

    # -- waking ---------------------------------------------------------------------
    def next_wakeup(self) -> int:
        times = [t for t in self.held.values() if t >= 0]
        times += [t for k, t in self.parked_until.items() if t >= 0 and self.parked.get(k)]
        return min(times, default=-1)

    def source_parts(self, skey: int) -> tuple[int, str]:
        """(tenant id, host) of a source key."""
        tid, sid = _unpack(skey)
        return tid, self.source_ids.name(sid)

    def breaker_parts(self, bkey: int) -> tuple[int, int, int]:
        """(tenant, job type, source id) of a breaker key."""
        tid, sid = _unpack(bkey >> _KEY_SHIFT)
        return tid, bkey & ((1 << _KEY_SHIFT) - 1), sid

    def due(self, now: int) -> tuple[list[tuple[int, int]], list[Job]]:
        """Queues to release (tenant, job type) and parked jobs to put back, now."""
        self.breakers.sweep(now)  # closed breakers whose window emptied cost nothing
        queues = []
        for qkey, when in list(self.held.items()):
            if 0 <= when <= now:
                del self.held[qkey]
                queues.append(_unpack(qkey))
        jobs: list[Job] = []
        for skey, when in list(self.parked_until.items()):
            if 0 <= when <= now:
                del self.parked_until[skey]
                jobs.extend(self._unpark(skey))
        return queues, jobs

    def _unpark(self, skey: int) -> Iterable[Job]:
        waiting = self.parked.pop(skey, None) or deque()
        for job in waiting:
            self.parked_jids.discard(job.jid)
        return waiting

    def withdraw(self, job: Job) -> bool:
        """Take a parked job out (cancel); True when it was parked."""
        if job.jid not in self.parked_jids:
            return False
        self.parked_jids.discard(job.jid)
        for waiting in self.parked.values():
            if job in waiting:
                waiting.remove(job)
                break
        return True

    # -- views ----------------------------------------------------------------------
    def quota_state(self, tid: int, jtype: int, now: int) -> dict[str, Any]:
        """What a quota allows now: in flight, tokens, whether its queue is held."""
        key = _pack(tid, jtype)
        bucket = self.quota_rate.state(key, now)
        return {
            "inFlight": self.quota_slots.inflight(key),
            "tokens": None if bucket is None else bucket[3],
            "held": key in self.held,
        }

    def source_state(self, tid: int, host: str, now: int) -> dict[str, Any]:
        """A source's bucket (current and configured rate, tokens, penalties), slots,
        parked jobs and breakers."""
        sid = self.source_ids.find(host)
        key = _pack(tid, sid) if sid >= 0 else -1
        source = self.sources.get((tid, sid)) if key >= 0 else None
        if source is not None:
            self._unthrottle(now, key, source)
        bucket = self.source_rate.state(key, now) if key >= 0 else None
        breakers = {}
        for bkey in self.breakers.keys() if key >= 0 else ():
            if bkey >> _KEY_SHIFT == key:
                breakers[bkey & ((1 << _KEY_SHIFT) - 1)] = self.breakers.state(bkey, now)
        return {
            "rate": None if bucket is None else bucket[1] / 1000,
            "configuredRate": None if bucket is None else bucket[0] / 1000,
            "tokens": None if bucket is None else bucket[3],
            "pausedUntil": None if bucket is None or not bucket[4] else bucket[4],
            "penalties": 0 if bucket is None else bucket[5],
            "inFlight": self.source_slots.inflight(key) if key >= 0 else 0,
            "parked": len(self.parked.get(key, ()))
            + sum(len(self.parked.get(_breaker_park(key, jt), ())) for jt in breakers),
            "breakers": breakers,  # job type id -> (state, failures, total)
        }
