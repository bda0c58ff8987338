"""Group commit: the one task that writes the journal to the ledger.

As soon as the previous commit has finished, the flusher cuts everything the
journal gathered and writes it in one transaction; requests that must be
durable before they are answered (submissions, completions) wait for the
flush that holds their records. Under load batches grow by themselves; a lone
request is not kept waiting for a timer.

If the ledger fails, the same batch is retried with backoff until it is
written (batches must land in order); meanwhile new records keep gathering
in the journal, and once the backlog passes its bound the broker refuses
new durable work with BACKPRESSURE instead of growing without limit.

Writes only append; the ledger's upkeep (``compact``: folding history into the
jobs table on SQLite, moving the live floor on Postgres) runs here too, in
bounded steps, whenever there is nothing to flush, or between flushes once the
history written since passes ``fold_threshold`` rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..engine import Record
from ..store import FlushBatch, Ledger
from ..store.text import storable_batch
from .clock import Clock, SystemClock
from .journal import Journal

log = logging.getLogger("broker.flusher")


class Flusher:
    def __init__(
        self,
        ledger: Ledger,
        journal: Journal,
        max_backlog: int = 200_000,
        retry_base_s: float = 0.05,
        retry_cap_s: float = 2.0,
        fold_step: int = 20_000,
        fold_threshold: int = 1_000_000,
        clock: Clock | None = None,
        retention_ms: int = 0,
        on_commit: Callable[[FlushBatch], None] | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        #: told of every batch once it is committed (events are made from durable facts)
        self.on_commit = on_commit
        self.ledger = ledger
        self.journal = journal
        self.max_backlog = max_backlog
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._wake = asyncio.Event()
        self._waiting: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._write_all = False
        self._in_flight = 0
        # monotonic times of the oldest record gathered, and of the batch being written
        self._journal_since: float | None = None
        self._flight_since: float | None = None
        self.fold_step = fold_step
        self.fold_threshold = fold_threshold
        self.unfolded = 0  # history rows written and not folded yet
        self.quiet_s = 0.2  # fold when idle this long (or past fold_threshold)
        self._last_add = 0.0
        self.healthy = True
        self.last_error = ""
        self.flushes = 0
        self.escaped = 0  # text fields a failed write had to escape (see ``_write``)
        self.failures = 0
        # finished jobs older than this are purged when idle (0: kept for ever)
        self.retention_ms = retention_ms
        self.purge_step = 10_000
        self.purge_every_s = 60.0
        self.purged = 0
        self._next_purge = 0.0  # monotonic time of the next purge step

    # -- what the broker calls ----------------------------------------------------
    @property
    def backlog(self) -> int:
        """Rows waiting: gathered in the journal plus the batch being written."""
        return len(self.journal) + self._in_flight

    @property
    def saturated(self) -> bool:
        return self.backlog >= self.max_backlog

    def lag_seconds(self) -> float:
        """Age of the oldest record not yet committed (0 when all is written)."""
        since = self._flight_since if self._flight_since is not None else self._journal_since
        return 0.0 if since is None else time.monotonic() - since

    def add(self, records: list[Record]) -> None:
        """Write-behind: the records go out with the next flush; nobody waits."""
        if records:
            self.journal.add(records)
            self._last_add = time.monotonic()
            if self._journal_since is None:
                self._journal_since = time.monotonic()
            self._wake.set()

    async def commit(self, records: list[Record], everything: bool = False) -> None:
        """Add records and return once the flush holding them is committed.

        With no records it still waits if anything is pending, so that an
        answer never overtakes an earlier write it depends on (a deduplicated
        submission of a job whose own submission is still in flight)."""
        self.add(records)
        if not records and not self.backlog:
            return
        if everything:
            self._write_all = True  # held claims too: a reader wants the whole truth
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._wake.set()
        await future

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        self.unfolded = await self.ledger.unfolded()
        self._task = asyncio.create_task(self._run(), name="flusher")

    async def stop(self) -> None:
        """Write what is pending, then end."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            if self._stopping:
                if len(self.journal) or self._waiting:
                    await self._flush_once(everything=True)
                return
            if len(self.journal) or self._waiting:
                # two turns of the loop first, no time: requests already runnable, and
                # those the next poll of the sockets finds, join this group commit instead
                # of the next (single-job scenario, alternating runs: no turn 20.8 acks per
                # flush, one 22.2, two 24.5; broker CPU 56–56.5 µs, 54.5–55, 52–57 with
                # two against 55–59.5 with one in the same pairs; a third bought nothing)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                if await self._flush_once():
                    if self.unfolded > self.fold_threshold:
                        await self._fold_once()
                else:
                    # only claims held back to meet their acks: sleep until one is due
                    await self._sleep(self.journal.due_in_ms(self.clock.now_ms()) / 1000)
            elif self.unfolded and self.healthy and self._quiet():
                await self._fold_once()  # idle: fold history while nothing waits
            elif self.unfolded and self.healthy:
                await self._sleep(self.quiet_s)  # fold once the broker was quiet a moment
            elif self._purge_due():
                await self.purge_once()
            elif self.retention_ms:
                await self._sleep(max(0.0, self._next_purge - time.monotonic()))
            else:
                await self._wake.wait()
                self._wake.clear()

    async def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass or new records arrive.

        ``wait_for`` on purpose, though an ``Alarm`` (alarm.py) costs 4 µs less per
        sleep: the flusher then woke sooner and cut smaller group commits (17.9 acks
        per flush against 20.4 in the single-job scenario on SQLite), which cost more
        broker CPU per job than the sleeps saved (71 / 70 / 72.5 µs against 68 / 62.5
        / 67, alternating runs)."""
        try:
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.001))
        except TimeoutError:
            pass
        self._wake.clear()

    def _quiet(self) -> bool:
        """No record for a while: folding now will not hold up a burst of requests."""
        return time.monotonic() - self._last_add >= self.quiet_s

    def _purge_due(self) -> bool:
        return bool(self.retention_ms) and self.healthy and time.monotonic() >= self._next_purge

    async def purge_once(self) -> None:
        """Delete one step of finished jobs past the retention (idle time only)."""
        try:
            gone = await self.ledger.purge(self.clock.now_ms() - self.retention_ms, self.purge_step)
        except Exception as exc:  # noqa: BLE001 - the next flush reports ledger trouble
            log.warning("retention purge failed: %s", exc)
            gone = 0
        self.purged += gone
        # a full step means more are due: go on at the next idle moment
        wait = 0.0 if gone == self.purge_step else self.purge_every_s
        self._next_purge = time.monotonic() + wait

    async def _fold_once(self) -> None:
        try:
            folded = await self.ledger.compact(self.fold_step)
        except Exception as exc:  # noqa: BLE001 - the next flush reports ledger trouble
            log.warning("history fold failed: %s", exc)
            await asyncio.sleep(self._retry_base_s)
            return
        self.unfolded = max(0, self.unfolded - folded) if folded else 0

    async def _flush_once(self, everything: bool = False) -> bool:
        """Write what is ready; False when nothing was (only held claims, nobody waiting)."""
        everything = everything or self._write_all
        self._write_all = False
        batch = self.journal.cut(self.clock.now_ms(), everything)
        if not len(batch) and not self._waiting:
            return False
        waiting, self._waiting = self._waiting, []
        self._flight_since, self._journal_since = self._journal_since, None
        self._in_flight = len(batch)
        batch = await self._write(batch)  # as written: text it had to escape, escaped
        self._in_flight = 0
        self._flight_since = None
        if self.on_commit is not None and (batch.audit or batch.runs):
            try:
                self.on_commit(batch)
            except Exception:  # a subscriber's trouble must never stop the writes
                log.exception("publishing a committed batch failed")
        for future in waiting:
            if not future.done():
                future.set_result(None)
        return True

    async def _write(self, batch: FlushBatch) -> FlushBatch:
        """Write ``batch``, retrying until it lands; returns it as written."""
        delay = self._retry_base_s
        tried_escaping = False
        while True:
            try:
                if len(batch):
                    await self.ledger.apply(batch)
            except Exception as exc:  # noqa: BLE001 - any driver error: keep the batch, retry
                self.failures += 1
                if not tried_escaping and _refused_text(exc):
                    # text the API should have refused: escaped, or no flush would ever
                    # succeed again; the rest of the batch is written as it was
                    tried_escaping = True
                    batch, escaped = storable_batch(batch)
                    if escaped:
                        self._log_escaped(escaped, exc)
                        continue
                if self.healthy:
                    log.error("ledger write failed, retrying with backoff: %s", exc)
                self.healthy = False
                self.last_error = str(exc) or type(exc).__name__
                await asyncio.sleep(delay)
                delay = min(self._retry_cap_s, delay * 2)
                continue
            if not self.healthy:
                log.warning("ledger write recovered after %d failures", self.failures)
            self.healthy = True
            self.flushes += 1
            self.unfolded += len(batch.history)
            return batch

    def _log_escaped(self, fields: int, exc: Exception) -> None:
        # loud once; then counted (orchestrator_ledger_escaped_total): the engine still
        # holds the raw text, so each later batch carrying it is escaped again
        if not self.escaped:
            log.error("ledger write refused %d text fields no store takes, now escaped "
                      "(a request check is missing): %s", fields, exc)  # fmt: skip
        self.escaped += fields


# what drivers say about text they cannot store: SQLite and asyncpg's text codec raise
# UnicodeEncodeError (asyncpg may wrap it); Postgres refuses a NUL with one of these
_TEXT_SQLSTATES = frozenset({"22021", "22P05"})  # character not in repertoire, untranslatable


def _refused_text(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a store refusing a string's characters."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; a loop in it must not hang the flusher
        if seen is None:
            return False
        if (
            isinstance(seen, UnicodeEncodeError)
            or getattr(seen, "sqlstate", None) in _TEXT_SQLSTATES
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
