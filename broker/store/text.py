"""What a ledger's text column can hold.

Postgres ``text`` takes no NUL character, and neither driver can encode a lone
surrogate (the form a header byte that is not UTF-8 takes once aiohttp decoded
it). A string that reached a flush in either form would fail that flush and
every retry of it, holding every later durable answer: the API refuses such
strings before they are accepted, with this one test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .rows import FlushBatch


def storable(text: str) -> bool:
    """True when every store can write ``text`` as it is."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str) -> str:
    """``text`` made storable, nothing dropped: an unpaired surrogate and a NUL
    written as the escapes Python would print (``\\udcff``, ``\\x00``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def storable_batch(batch: FlushBatch) -> tuple[FlushBatch, int]:
    """``batch`` with every text field ``storable`` (escaped where it was not), and
    how many fields that changed. The flusher's last resort after a failed write: a
    string the API should have refused must not stall every later flush."""
    changed = 0

    def fixed(row: Any) -> Any:
        nonlocal changed
        values = [escaped(v) if type(v) is str and not storable(v) else v for v in row]
        fixes = sum(a is not b for a, b in zip(values, row, strict=True))
        if not fixes:
            return row
        changed += fixes
        return row._make(values) if hasattr(row, "_make") else tuple(values)

    columns = [getattr(batch, f.name) for f in dataclasses.fields(batch)]
    return FlushBatch(*([fixed(row) for row in rows] for rows in columns)), changed
