"""Batches written to SQLite, one transaction each (pure-Python twin and
specification of ``sqlite_writer.pyx``).

The SQLite ledger's flush is one ``write``: a list of steps, each a DML
statement (INSERT, UPDATE, DELETE, REPLACE) and the rows it runs with (once
per row, in order; a step without rows is skipped unread), inside ``BEGIN
IMMEDIATE`` … ``COMMIT``. Any failure rolls the whole batch back and raises
what the sqlite3 module raises: ``ProgrammingError`` for another kind of
statement, a value it cannot bind (after its adapters) or a row of the wrong
length, ``OverflowError`` for an int past 64 bits, ``UnicodeEncodeError`` for
a string with a lone surrogate, and SQLite's own failures as its classes
(``IntegrityError`` for a constraint, ``OperationalError`` for most others).
The writer owns its connection (WAL mode, the given ``synchronous``, a 5 s
busy timeout) and serves one thread at a time (a second one is refused); the
ledger's reads use a connection of their own.

Here the sqlite3 module does the work, as the ledger did before the compiled
twin: a run of plain ``INSERT … VALUES (?, …)`` rows goes 32 rows to a
statement (one step per row cost a quarter more CPU per row, session 5), and
so it does in the compiled twin, which copies a batch's values into C memory
and writes them with the GIL released, so the event loop's thread keeps
running while it does.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from itertools import chain
from os import PathLike
from typing import Any

# Binding a parameter that is not exactly int, float or str sends the sqlite3
# module down its adaptation path, which for None and bytes ends in failed
# attribute lookups costing about as much as the rest of the row. An adapter
# registered for them is found at once; it returns the value as it is, so what
# is stored does not change. (The registry is the sqlite3 module's, process-wide;
# identity adapters change nothing for anyone else either.)
sqlite3.register_adapter(type(None), lambda value: value)
sqlite3.register_adapter(bytes, lambda value: value)

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_MS = 5_000
#: rows per multi-row INSERT
ROWS_PER_INSERT = 32

# an INSERT whose VALUES clause is one group of placeholders at its very end
_PLAIN_INSERT = re.compile(
    r"^\s*INSERT\b.*\bVALUES\s*(\(\s*\?(?:\s*,\s*\?)*\s*\))\s*$", re.S | re.I
)

Step = tuple[str, Sequence[Sequence[Any]]]

# what the sqlite3 module's executemany takes: a statement whose first word, after
# blanks and comments, is one of these (Modules/_sqlite/statement.c)
_DML = re.compile(
    r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*(insert|update|delete|replace)\b", re.I | re.S
)


def _is_dml(sql: str) -> bool:
    return _DML.match(sql) is not None


def _multi_row(sql: str) -> tuple[str, int] | None:
    """``sql`` taking ROWS_PER_INSERT rows (its placeholder group repeated) and the
    width of a row, or None when it is not a plain INSERT … VALUES (?, …)."""
    match = _PLAIN_INSERT.match(sql)
    if match is None:
        return None
    group = match.group(1)
    return sql[: match.start(1)] + ", ".join([group] * ROWS_PER_INSERT), group.count("?")


class SqliteWriter:
    _conn: sqlite3.Connection | None = None

    def __init__(self, path: str | PathLike[str], synchronous: str = "FULL") -> None:
        if not isinstance(synchronous, str):
            raise TypeError("synchronous must be a str")
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        if self._conn is not None:
            raise RuntimeError("SqliteWriter is already open")
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._many: dict[str, tuple[str, int] | None] = {}
        self._writing = threading.Lock()

    @property
    def busy(self) -> bool:
        """A write is running (in some thread)."""
        return self._writing.locked()

    def write(self, steps: Sequence[Step]) -> None:
        """Run every step's statement once per row, all in one transaction."""
        db = self._db()
        if not self._writing.acquire(blocking=False):
            raise RuntimeError("SqliteWriter is writing in another thread")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    self._run(db, sql, rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:
            self._writing.release()

    def _run(self, db: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if sql not in self._many:
            self._many[sql] = _multi_row(sql)
        plan = self._many[sql]
        whole = 0
        if plan is not None and len(rows) >= ROWS_PER_INSERT:
            many, width = plan
            # rows run together: one short row and one long one would shift every
            # value after them instead of failing as a single row does
            bad = next((row for row in rows if len(row) != width), None)
            if bad is not None:
                raise sqlite3.ProgrammingError(
                    f"Incorrect number of bindings supplied. The current statement uses "
                    f"{width}, and there are {len(bad)} supplied."
                )
            whole = len(rows) - len(rows) % ROWS_PER_INSERT
            for start in range(0, whole, ROWS_PER_INSERT):
                db.execute(many, tuple(chain.from_iterable(rows[start : start + ROWS_PER_INSERT])))
        if whole < len(rows):
            # plain tuples: the sqlite3 module binds a tuple subclass item by item
            # through the sequence protocol, a plain tuple directly
            db.executemany(sql, map(tuple, rows[whole:]))

    def close(self) -> None:
        if self._conn is not None and self.busy:
            raise RuntimeError("SqliteWriter is writing in another thread")
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._conn
