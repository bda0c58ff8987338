"""WAL written during a run on a Postgres ledger (``--store postgresql://…``).

``pg_current_wal_lsn()`` is read on the broker's own database (the same DSN, an
asyncpg connection of our own) just before the run's first submission and just
after its last ack; ``pg_wal_lsn_diff`` of the two is ``wal_bytes``, and divided
by the jobs acked in between, ``wal_bytes_per_job``. The WAL is the cluster's:
whatever else writes to that cluster meanwhile counts too, so measure on a quiet
machine.

The broker folds history into the jobs table off the hot path, once it has been
idle a moment (see ``broker/service/flusher.py``), so the fold of a run's
history mostly comes after its last ack. :meth:`Wal.figures` waits for that fold
to catch up and reports its WAL apart, as ``wal_fold_bytes`` and
``wal_fold_bytes_per_job``.

On any other store every method is a no-op and :meth:`Wal.figures` is empty.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import asyncpg

from broker.store import queries

from .common import Json

FOLD_TIMEOUT_S = 300.0
_Q = queries.load("broker.store.sql.postgres", "queries.sql")


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


class Wal:
    """``async with Wal(store) as wal: await wal.begin(); …; figures = await wal.figures(n)``."""

    def __init__(self, store: str) -> None:
        self.dsn = store if is_postgres(store) else None
        self._conn: Any = None  # asyncpg.Connection (asyncpg has no type hints)
        self._start: int | None = None
        self._mark: int | None = None

    async def __aenter__(self) -> Wal:
        if self.dsn is not None:
            self._conn = await asyncpg.connect(self.dsn)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _lsn(self) -> int:
        """``pg_current_wal_lsn()`` (asyncpg decodes a ``pg_lsn`` as an int)."""
        return int(await self._conn.fetchval("SELECT pg_current_wal_lsn()"))

    async def _diff(self, after: int, before: int) -> int:
        return int(await self._conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", after, before))

    async def begin(self) -> None:
        """Read the WAL position: call just before the run's first submission."""
        if self._conn is not None:
            self._start = await self._lsn()

    async def mark(self) -> None:
        """Read the WAL position between the submissions and the drain, so the
        figures also split the WAL into what submitting and draining wrote."""
        if self._conn is not None:
            self._mark = await self._lsn()

    async def figures(self, acked: int) -> Json:
        """Call just after the run's last ack, with the jobs acked since :meth:`begin`.

        ``wal_bytes`` and ``wal_bytes_per_job`` up to now; then, once the broker has
        folded the history written so far, ``wal_fold_bytes`` and
        ``wal_fold_bytes_per_job`` for the WAL written after the last ack."""
        if self._conn is None:
            return {}
        if self._start is None:
            raise RuntimeError("Wal.figures() before Wal.begin()")
        end = await self._lsn()
        written = await self._diff(end, self._start)
        await self._folded()
        fold = await self._diff(await self._lsn(), end)
        figures: Json = {
            "wal_bytes": written,
            "wal_bytes_per_job": _per(written, acked),
        }
        if self._mark is not None:
            figures["wal_submit_bytes_per_job"] = _per(
                await self._diff(self._mark, self._start), acked
            )
            figures["wal_drain_bytes_per_job"] = _per(await self._diff(end, self._mark), acked)
        figures["wal_fold_bytes"] = fold
        figures["wal_fold_bytes_per_job"] = _per(fold, acked)
        return figures

    async def _folded(self) -> None:
        """Wait until the broker's fold watermark reaches the newest history row."""
        deadline = time.monotonic() + FOLD_TIMEOUT_S
        while True:
            folded = await self._conn.fetchval(_Q["folded_upto"])
            last = await self._conn.fetchval(_Q["last_seq"])
            if folded >= last:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"history not folded after {FOLD_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.05)


def _per(total: int, jobs: int) -> float:
    return round(total / jobs, 1) if jobs else 0.0
