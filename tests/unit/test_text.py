"""What a ledger's text column takes, and the flusher's escaping of what it does not."""

from __future__ import annotations

import pytest

from broker.store import AuditRow, FlushBatch, HistoryRow, RunRow
from broker.store.text import escaped, storable, storable_batch


@pytest.mark.parametrize(
    ("text", "ok"),
    [("", True), ("plain", True), ("wörker ✓ 𝄞", True), ("a\x00b", False), ("\udcff", False),
     ("\ud800x", False), ("\t\n\x01", True)],
)  # fmt: skip
def test_storable(text: str, ok: bool) -> None:
    assert storable(text) is ok


def test_escaped_keeps_everything_readable() -> None:
    assert escaped("w\udcff\x00!") == "w\\udcff\\x00!"
    assert storable(escaped("w\udcff\x00!"))
    assert escaped("wörker") == "wörker"


def test_only_unstorable_fields_change() -> None:
    good = HistoryRow(1, 2, 3, 1, 0, 0, "w", 0, 0, None, 5, "w", 1, 2, 0, None, None, b"\x00",
                      None)  # fmt: skip
    bad = good._replace(worker="w\x00", reason="r\udcff")
    run = RunRow("run\x00", "t", None, 1, "running", 1)
    audit = AuditRow(1, "t", "actor", "quota.set", "scan", "why\udcff", None)
    batch = FlushBatch(history=[good, bad], runs=[run], members=[("run\x00", 7)], audit=[audit])
    fixed, changed = storable_batch(batch)
    assert changed == 5
    assert fixed.history[0] is good  # untouched rows stay the same objects
    assert fixed.history[1] == bad._replace(worker="w\\x00", reason="r\\udcff")
    assert fixed.history[1].output == b"\x00"  # bytes are not text: left as they are
    assert fixed.runs == [run._replace(run_id="run\\x00")]
    assert fixed.members == [("run\\x00", 7)]
    assert fixed.audit[0].reason == "why\\udcff" and fixed.audit[0].actor == "actor"
    assert storable_batch(fixed) == (fixed, 0)
