"""An async worker: claim jobs, run a handler on each, report the results.

Three loops share one session and the table of leases the worker holds:

- the *claim loop* long-polls (``waitMs``) for as many jobs as there are free
  slots, so an idle worker costs one open request, not a stream of polls;
- the *ack loop* lingers ``ack_batch_ms`` to gather finished jobs into one
  POST /worker/ack and, when slots are free, attaches a ``claim`` so the next
  jobs come back in the same round trip. While results wait to be acked the
  claim loop stands aside and lets the ack do the claiming;
- the *heartbeat loop* extends, in one batched request, every lease that has
  used up a third of its time. A lease the broker reports ``lost`` has been
  taken back: its handler is cancelled and its result never sent.

A slot stays taken from claim until the broker has the job's result, so at
most ``concurrency`` jobs are ever held, even while acks cannot get through.
Claims in flight reserve the slots they ask for.

``stop()`` (or SIGTERM, via ``install_signal_handlers``) drains: no more
claims, running handlers get ``drain_timeout_s`` to finish, their results are
flushed, then the session closes and ``run()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .client import API_BASE, ApiError, Backoff, Client, RetryPolicy, is_transient
from .outcomes import NonRetryable, RetryAfter, abandoned, failed, succeeded

log = logging.getLogger("broker.sdk.worker")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

MAX_ITEMS = 1_000  # the broker's limit on jobs per claim and items per ack/heartbeat
MIN_FLUSH_S = 5.0  # time acks get after a drain, even when the handlers used it all
MIN_EMPTY_CLAIM_S = 0.05  # an empty claim answered faster than this was not a long poll
# transient failures of the worker's own calls are retried for as long as it runs
FOREVER = RetryPolicy(attempts=sys.maxsize, base_s=0.05, cap_s=5.0, budget_s=float("inf"))


@dataclass(eq=False, slots=True)
class _Lease:
    """One job the worker holds, from claim until the broker has its result."""

    job: dict[str, Any]
    deadline: float  # loop time by which the lease surely ends unless extended
    task: asyncio.Task[None] | None = None
    result: dict[str, Any] | None = None  # the ack result, once the handler is done
    lost: bool = False  # the broker took the lease back
    abandoned: bool = False  # cancelled by a drain that ran out of time

    @property
    def key(self) -> str:
        return str(self.job["leaseId"])  # unique per grant, unlike the job id


class Worker:
    """Runs ``handler`` on claimed jobs of ``job_types`` until ``stop()``.

    Counters ``claimed``, ``succeeded``, ``failed`` and ``lost`` (results
    the broker no longer wanted: lease lost, conflict, not found) count jobs.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        worker_id: str,
        job_types: Iterable[str],
        handler: Handler,
        *,
        concurrency: int = 16,
        batch: int | None = None,
        lease_seconds: int = 30,
        wait_ms: int = 10_000,
        ack_batch_ms: float = 2.0,
        drain_timeout_s: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 1 <= lease_seconds <= 3600 or not 0 <= wait_ms <= 30_000:
            raise ValueError("need 1 <= lease_seconds <= 3600 and 0 <= wait_ms <= 30000")
        self.client = Client(base_url, token)
        self.worker_id = worker_id
        self.job_types = list(job_types)
        self.handler = handler
        self.concurrency = concurrency
        self.batch = max(1, min(batch or concurrency, concurrency, MAX_ITEMS))
        self.lease_seconds = lease_seconds
        self.wait_ms = wait_ms
        self.ack_batch_s = ack_batch_ms / 1000
        self.drain_timeout_s = drain_timeout_s
        self.claimed = self.succeeded = self.failed = self.lost = 0
        self._leases: dict[str, _Lease] = {}
        self._done: deque[_Lease] = deque()  # finished, result not yet sent
        self._acking = False
        self._reserved = 0  # slots promised to claims in flight
        self._claiming = True
        self._flushing = False  # draining: the ack loop ends once nothing is left
        self._changed = asyncio.Event()  # slots freed or acks settled: the claim loop looks again
        self._results = asyncio.Event()  # a result is waiting for the ack loop
        self._stop = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._leases)

    def stop(self) -> None:
        """Ask ``run()`` to drain and return; safe to call from a signal handler."""
        self._stop.set()

    def install_signal_handlers(
        self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """Drain on SIGTERM/SIGINT; call from inside the running event loop."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Work until ``stop()``, then drain and close.

        A refused claim (bad token, unknown scope, invalid job type) cannot
        get better by retrying: the worker drains and ``run`` raises it.
        Cancelling ``run`` is the hard stop: handlers are cancelled, nothing
        more is acked, and the broker takes the leases back when they expire.
        """
        loops = [
            asyncio.create_task(self._claim_loop(), name="sdk-claim"),
            asyncio.create_task(self._ack_loop(), name="sdk-ack"),
            asyncio.create_task(self._heartbeat_loop(), name="sdk-heartbeat"),
        ]
        claimer, acker, beater = loops
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([*loops, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            await self._drain(claimer, acker)
        except asyncio.CancelledError:
            for task in (*loops, stopping, *self._tasks()):
                task.cancel()
            raise
        finally:
            beater.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.client.close()
        for task in loops:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _drain(self, claimer: asyncio.Task[None], acker: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout_s
        self._claiming = False
        claimer.cancel()
        await asyncio.gather(claimer, return_exceptions=True)
        while self._acking and not acker.done():  # an ack in flight may bring jobs back with it
            self._changed.clear()
            await self._changed.wait()
        running = self._tasks()
        if running:
            _, late = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
            for lease in self._leases.values():
                if lease.task in late:
                    lease.abandoned = True
                    lease.task.cancel()
            if late:
                log.warning("drain timed out: %d handlers cancelled", len(late))
                await asyncio.wait(late, timeout=1.0)
        self._flushing = True
        self._results.set()
        flush_s = max(MIN_FLUSH_S, deadline - loop.time())
        _, unfinished = await asyncio.wait([acker], timeout=flush_s)
        if unfinished:
            acker.cancel()
            log.warning("drain: %d results could not be acked", len(self._done))

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [lease.task for lease in self._leases.values() if lease.task is not None]

    # -- slots -------------------------------------------------------------------------------
    def _free(self, settling: int = 0) -> int:
        """Slots no job holds and no claim has asked for (``settling``: jobs being acked now)."""
        return self.concurrency - (len(self._leases) - settling) - self._reserved

    async def _wait_for_slots(self) -> int:
        while True:
            free = self._free()
            if free > 0 and not self._done and not self._acking:
                return free
            self._changed.clear()
            await self._changed.wait()

    def _start(self, jobs: list[dict[str, Any]], sent_at: float) -> None:
        deadline = sent_at + self.lease_seconds
        for job in jobs:
            lease = _Lease(job, deadline)
            self._leases[lease.key] = lease
            lease.task = asyncio.create_task(self._execute(lease))
        self.claimed += len(jobs)

    def _forget(self, lease: _Lease) -> None:
        if self._leases.pop(lease.key, None) is not None:
            self._changed.set()

    # -- handlers -----------------------------------------------------------------------
    async def _execute(self, lease: _Lease) -> None:
        job = lease.job
        result: dict[str, Any] | None
        try:
            output = await self.handler(job)
        except asyncio.CancelledError:
            if not (lease.lost or lease.abandoned):
                raise
            result = None if lease.lost else abandoned(job)
        except Exception as exc:
            quiet = isinstance(exc, NonRetryable | RetryAfter | TimeoutError)
            log.warning(
                "job %s attempt %s failed: %r",
                job["jobId"],
                job.get("attempt"),
                exc,
                exc_info=not quiet,
            )
            result = failed(job, exc)
        else:
            result = succeeded(job, output)
        lease.task = None
        if lease.lost or result is None:
            self.lost += 1
            self._forget(lease)
            return
        lease.result = result
        self._done.append(lease)
        self._results.set()

    def _lose(self, lease: _Lease) -> None:
        """The broker took the lease back: stop the handler; its result will not be sent."""
        if lease.lost:
            return
        lease.lost = True
        log.info("lease of job %s lost", lease.job["jobId"])
        if lease.task is not None:
            lease.task.cancel()

    # -- claim ------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(FOREVER)
        idle = 0
        while True:
            count = min(self.batch, await self._wait_for_slots())
            body = {
                "workerId": self.worker_id,
                "jobTypes": self.job_types,
                "maxJobs": count,
                "leaseSeconds": self.lease_seconds,
                "waitMs": self.wait_ms,
            }
            sent_at = loop.time()
            self._reserved += count
            try:
                reply = await self.client.request(
                    "POST",
                    f"{API_BASE}/worker/claim",
                    body,
                    timeout_s=self.wait_ms / 1000 + self.client.timeout_s,
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise
                reply = None
                delay = backoff.next_delay(exc) or FOREVER.cap_s
            finally:
                self._reserved -= count
                self._changed.set()
            if reply is None:
                log.info("claim failed, retrying in %.2f s", delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            self._start(reply["jobs"], sent_at)
            if not reply["jobs"] and loop.time() - sent_at < MIN_EMPTY_CLAIM_S:
                # the broker did not long-poll (waitMs 0, or a lower cap): do not spin
                idle += 1
                await asyncio.sleep(FOREVER.delay(min(idle, 4)))
            else:
                idle = 0

    # -- ack ----------------------------------------------------------------------------------
    async def _ack_loop(self) -> None:
        backoff = Backoff(FOREVER)
        while True:
            if not self._done:
                if self._flushing:
                    return
                self._results.clear()
                await self._results.wait()
                continue
            if self.ack_batch_s > 0:
                await asyncio.sleep(self.ack_batch_s)
            batch = self._take_batch()
            if not batch:
                continue
            failure = await self._send_acks(batch)
            if failure is None:
                backoff.reset()
                continue
            self._done.extendleft(reversed(batch))  # back to the front, in order
            await asyncio.sleep(backoff.next_delay(failure) or FOREVER.cap_s)

    def _take_batch(self) -> list[_Lease]:
        """Up to MAX_ITEMS results to send; results of leases known to be gone are dropped."""
        now = asyncio.get_running_loop().time()
        batch: list[_Lease] = []
        while self._done and len(batch) < MAX_ITEMS:
            lease = self._done.popleft()
            if lease.lost or lease.deadline < now:
                self.lost += 1
                self._forget(lease)
            else:
                batch.append(lease)
        return batch

    async def _send_acks(self, batch: list[_Lease]) -> BaseException | None:
        """Send one ack (with a claim for free slots); the transient failure, if any."""
        loop = asyncio.get_running_loop()
        body: dict[str, Any] = {
            "workerId": self.worker_id,
            "results": [lease.result for lease in batch],
        }
        count = min(self.batch, self._free(settling=len(batch))) if self._claiming else 0
        if count > 0:
            body["claim"] = {
                "jobTypes": self.job_types,
                "maxJobs": count,
                "leaseSeconds": self.lease_seconds,
                "waitMs": 0,
            }
        sent_at = loop.time()
        self._reserved += max(count, 0)
        self._acking = True
        try:
            reply = await self.client.request("POST", f"{API_BASE}/worker/ack", body)
        except Exception as exc:
            if is_transient(exc):
                log.info("ack of %d results failed (%r), retrying", len(batch), exc)
                return exc
            if not isinstance(exc, ApiError):
                raise
            log.error("ack refused, %d results dropped: %s", len(batch), exc)
            reply = {"results": [{"outcome": "refused"}] * len(batch)}
        finally:
            self._reserved -= max(count, 0)
            self._acking = False
            self._changed.set()
        self._settle(batch, reply["results"])
        if reply.get("jobs"):
            self._start(reply["jobs"], sent_at)
        return None

    def _settle(self, batch: list[_Lease], results: list[dict[str, Any]]) -> None:
        for lease, answer in zip(batch, results, strict=True):
            if answer.get("outcome") != "accepted":
                self.lost += 1
            elif lease.result is not None and lease.result["status"] == "succeeded":
                self.succeeded += 1
            else:
                self.failed += 1
            self._forget(lease)

    # -- heartbeat ---------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.lease_seconds / 3
        pause = interval
        while True:
            await asyncio.sleep(pause)
            pause = interval if await self._heartbeat() else interval / 4

    async def _heartbeat(self) -> bool:
        """Extend every lease with less than two thirds of its time left; False on failure."""
        loop = asyncio.get_running_loop()
        horizon = loop.time() + self.lease_seconds * 2 / 3
        due = [
            lease for lease in self._leases.values() if not lease.lost and lease.deadline < horizon
        ]
        for start in range(0, len(due), MAX_ITEMS):
            chunk = due[start : start + MAX_ITEMS]
            body = {
                "workerId": self.worker_id,
                "leases": [
                    {
                        "jobId": lease.job["jobId"],
                        "leaseId": lease.key,
                        "extendSeconds": self.lease_seconds,
                    }
                    for lease in chunk
                ],
            }
            sent_at = loop.time()
            try:
                reply = await self.client.request("POST", f"{API_BASE}/worker/heartbeat", body)
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("heartbeat of %d leases failed: %r", len(chunk), exc)
                return False
            for lease, answer in zip(chunk, reply["leases"], strict=True):
                if answer.get("status") == "extended":
                    lease.deadline = max(lease.deadline, sent_at + self.lease_seconds)
                else:
                    self._lose(lease)
        return True
