"""The lease reaper and timer pump, as one task sleeping until the next deadline.

It wakes at the earliest lease deadline or timer due time the engine holds
(at the latest every ``max_sleep_s``), expires leases, releases due jobs, and
hands the records to the broker. When a command creates an earlier deadline
the broker pokes it so it re-arms at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..engine import Engine, Finished, Record
from .alarm import Alarm
from .clock import Clock


class Ticker:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        on_records: Callable[[list[Record]], None],
        max_sleep_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_records = on_records
        self.max_sleep_s = max_sleep_s
        self._rearm = Alarm()
        self._armed_for = -1  # ms the task sleeps until, -1 when unknown
        self._task: asyncio.Task[None] | None = None
        self.expired = 0

    def poke(self, when_ms: int) -> None:
        """A deadline at ``when_ms`` exists now: wake early if it is sooner."""
        if when_ms >= 0 and (self._armed_for < 0 or when_ms < self._armed_for):
            self._rearm.set()

    def tick(self) -> None:
        """Expire and release whatever is due now (also callable directly in tests)."""
        now = self.clock.now_ms()
        expired = self.engine.expire_leases(now)
        released = self.engine.release_due(now)
        for record in expired:
            if isinstance(record, Finished):  # runs' records may follow
                self.expired += len(record.jobs)
        if expired or released or self.engine.lifted:
            self.on_records(expired + released)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            self.tick()
            now = self.clock.now_ms()
            wake = self.engine.next_wakeup()
            sleep = self.max_sleep_s if wake < 0 else min(self.max_sleep_s, (wake - now) / 1000)
            self._armed_for = now + int(sleep * 1000)
            self._rearm.clear()
            if sleep > 0:
                await self._rearm.sleep(sleep)
