"""What a ledger's text column can hold.

Postgres ``text`` takes no NUL character, and neither driver can encode a lone
surrogate (the form a header byte that is not UTF-8 takes once aiohttp decoded
it). A string that reached a flush in either form would fail that flush and
every retry of it, holding every later durable answer: the API refuses such
strings before they are accepted, with this one test.
"""

from __future__ import annotations


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
