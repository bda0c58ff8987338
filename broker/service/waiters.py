"""Long-poll waiters: claims parked until their tenant has something ready.

A claim that found nothing parks a future under its tenant (or under ``None``
for a claim across all tenants). Whatever makes jobs claimable (submission,
timer release, lease expiry, retry) wakes the parked claims of the tenants
concerned; they claim again. No polling loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .alarm import ring


class Waiters:
    def __init__(self) -> None:
        self._parked: dict[str | None, set[asyncio.Future[None]]] = {}
        self.count = 0
        self.closed = False  # shutting down: no claim parks any more

    def __bool__(self) -> bool:
        return self.count > 0

    async def wait(self, tenant: str | None, timeout_s: float) -> None:
        """Return when woken or after ``timeout_s``, whichever is first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(timeout_s, ring, future)  # cheaper than wait_for (alarm.py)
        parked = self._parked.setdefault(tenant, set())
        parked.add(future)
        self.count += 1
        try:
            await future
        finally:
            timer.cancel()
            self.count -= 1
            parked.discard(future)
            if not parked:
                self._parked.pop(tenant, None)

    def close(self) -> None:
        """Shutdown: wake every parked claim; from now on none parks."""
        self.closed = True
        self.wake_all()

    def wake_all(self) -> None:
        """Wake every parked claim."""
        for parked in self._parked.values():
            for future in parked:
                if not future.done():
                    future.set_result(None)

    def wake(self, tenants: Iterable[str]) -> None:
        """Wake the claims parked for these tenants, and the all-tenant ones."""
        for tenant in (*tenants, None):
            for future in self._parked.get(tenant, ()):
                if not future.done():
                    future.set_result(None)
