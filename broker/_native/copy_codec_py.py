"""History rows as Postgres binary ``COPY`` data (pure-Python twin and
specification of ``copy_codec.pyx``).

A drain writes one history row per finished job, so encoding rows is the
Postgres ledger's per-job cost. asyncpg's ``copy_records_to_table`` encodes a
row field by field through its generic codecs; this writes the binary ``COPY``
format (a header, per row a field count and length-prefixed big-endian fields,
a trailer) for the one row shape the ledger appends, and the compiled twin
writes the same bytes in one C pass. The column types are the ``history``
table's (``store/sql/postgres``): int8, int2 ``state``, int4 ``attempt``, text
and bytea; ``due``, ``lease_token`` and ``lease_deadline`` are NULL when zero
(migration 0006: a NULL costs no bytes). Jobs below the live floor that a row
leaves non-terminal are returned too: the ledger lists them as stragglers.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Container, Sequence
from typing import Any

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
NULL = struct.pack("!i", -1)
#: one letter per history column, in ``HistoryRow`` order: q int8, z int8 stored as
#: NULL when 0, h int2, i int4, t text, b bytea (t and b: None is NULL)
LAYOUT = "qqhizztzqtqtqqqtbbt"
FIELDS = struct.pack("!h", len(LAYOUT))
_RANGES = {"q": 63, "z": 63, "h": 15, "i": 31}
_PACK = {"q": struct.Struct("!iq"), "z": struct.Struct("!iq"), "h": struct.Struct("!ih"),
         "i": struct.Struct("!ii")}  # fmt: skip
_SIZE = {"q": 8, "z": 8, "h": 2, "i": 4}


def _field(kind: str, value: Any) -> bytes:
    if kind in "tb":
        if value is None:
            return NULL
        if kind == "t":
            if not isinstance(value, str):
                raise TypeError(f"a text column takes str or None, not {type(value).__name__}")
            data = value.encode()
        else:
            if type(value) is not bytes:
                raise TypeError(f"a bytea column takes bytes or None, not {type(value).__name__}")
            data = value
        return struct.pack("!i", len(data)) + data
    if not isinstance(value, int):
        raise TypeError(f"an integer column takes int, not {type(value).__name__}")
    if kind == "z" and value == 0:
        return NULL
    bits = _RANGES[kind]
    if not -(1 << bits) <= value < 1 << bits:
        raise OverflowError(f"{value} does not fit a {bits + 1}-bit column")
    return _PACK[kind].pack(_SIZE[kind], value)


class CopyCodec:
    """Encoder of history rows for ``COPY history (…) FROM STDIN (FORMAT binary)``."""

    def history(
        self, rows: Sequence[Sequence[Any]], floor: int, terminal: Container[int]
    ) -> tuple[bytes, list[int]]:
        """The ``COPY`` data of ``rows`` (each the 19 fields of a ``HistoryRow``) and
        the jobs numbered below ``floor`` whose row leaves them in a state not in
        ``terminal``."""
        floor = operator.index(floor)  # an int, as the compiled codec compares it
        out = [HEADER]
        revived: list[int] = []
        for row in rows:
            if len(row) != len(LAYOUT):
                raise ValueError(f"a history row has {len(LAYOUT)} fields, not {len(row)}")
            out.append(FIELDS)
            out.extend(_field(kind, value) for kind, value in zip(LAYOUT, row, strict=True))
            if row[0] < floor and row[2] not in terminal:
                revived.append(row[0])
        out.append(TRAILER)
        return b"".join(out), revived
