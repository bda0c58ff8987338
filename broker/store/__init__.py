"""Ledgers: where the broker keeps what it accepted.

``open_ledger(url)`` picks the implementation from a URL:
``sqlite:///path/ledger.db`` (the embedded default), ``memory://`` (tests),
``postgresql://user@host:port/db`` (production, see ``postgres.py``).
"""

from __future__ import annotations

from .base import Ledger
from .memory import MemoryLedger
from .rows import (
    Attempt,
    AuditRow,
    FlushBatch,
    HistoryRow,
    JobHistory,
    JobRow,
    LimitRow,
    LiveState,
    RunHistory,
    RunRow,
    Transition,
)


def ledger_for(url: str, sqlite_synchronous: str = "FULL") -> Ledger:
    """A (not yet opened) ledger for ``url``; ValueError for an unknown scheme."""
    if url == "memory://":
        return MemoryLedger()
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteLedger

        return SqliteLedger(url[len("sqlite:///") :], synchronous=sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresLedger

        return PostgresLedger(url)
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///path, postgresql://… or memory://"
    )


__all__ = [
    "Attempt",
    "AuditRow",
    "FlushBatch",
    "HistoryRow",
    "JobHistory",
    "JobRow",
    "Ledger",
    "LimitRow",
    "LiveState",
    "MemoryLedger",
    "RunHistory",
    "RunRow",
    "Transition",
    "ledger_for",
]
