"""The compiled SQLite writer leaves the database its twin leaves, refuses what its
twin refuses with the same error type, rolls back as its twin does, and lets
other threads run while it waits on SQLite."""

from __future__ import annotations

import datetime
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.differential.pair import both

compiled, twin_module = both("sqlite_writer")
FACES = {"native": compiled.SqliteWriter, "twin": twin_module.SqliteWriter}

SCHEMA = """
CREATE TABLE t (k INTEGER PRIMARY KEY, a, b, c, d);
CREATE TABLE u (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
INSERT = "INSERT INTO t (k, a, b, c, d) VALUES (?, ?, ?, ?, ?)"
UPSERT = "INSERT INTO u (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + excluded.n"
DELETE = "DELETE FROM t WHERE k = ?"

Writer = Any
Steps = list[tuple[str, Sequence[Sequence[Any]]]]


def fresh(directory: Path, face: str) -> tuple[Writer, Path]:
    path = directory / f"{face}.db"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
    conn.close()
    return FACES[face](str(path)), path


def dump(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT 't', k, a, typeof(a), b, typeof(b), c, typeof(c), d, typeof(d)"
            " FROM t ORDER BY k"
        )
        found = rows.fetchall()
        found += conn.execute("SELECT 'u', name, n FROM u ORDER BY name").fetchall()
    finally:
        conn.close()
    return found


def outcome(writer: Writer, steps: Steps) -> str:
    try:
        writer.write(steps)
    except (sqlite3.Error, TypeError, ValueError, OverflowError, UnicodeEncodeError) as exc:
        return type(exc).__name__
    return "ok"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Callable[[Steps], tuple[str, str]]]:
    """Run the same steps through both faces: (native outcome, twin outcome),
    after checking both databases hold the same rows."""
    native, native_path = fresh(tmp_path, "native")
    twin, twin_path = fresh(tmp_path, "twin")

    def run(steps: Steps) -> tuple[str, str]:
        got = outcome(native, steps), outcome(twin, steps)
        assert dump(native_path) == dump(twin_path)
        return got

    yield run
    native.close()
    twin.close()


values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.binary(max_size=12),
    st.booleans(),
)
rows = st.lists(st.tuples(values, values, values, values), max_size=80)


@settings(max_examples=40)
@given(batches=st.lists(rows, min_size=1, max_size=4))
def test_random_batches_leave_the_same_rows(tmp_path_factory: Any, batches: Any) -> None:
    directory = tmp_path_factory.mktemp("writer")
    native, native_path = fresh(directory, "native")
    twin, twin_path = fresh(directory, "twin")
    key = 0
    for batch in batches:
        keyed = []
        for row in batch:
            key += 1
            keyed.append((key, *row))
        steps: Steps = [(INSERT, keyed), (UPSERT, [("n", len(keyed))])]
        assert outcome(native, steps) == outcome(twin, steps) == "ok"
    assert dump(native_path) == dump(twin_path)
    native.close()
    twin.close()


def test_many_rows_and_every_step_kind(pair: Callable[[Steps], tuple[str, str]]) -> None:
    first = [(k, k * 3, f"é{k}\x00", b"\x00\xff" * k, k / 7) for k in range(1, 101)]
    steps: Steps = [(INSERT, first), (DELETE, [(5,), (64,)]), (UPSERT, [("a", 1), ("a", 2)])]
    assert pair(steps) == ("ok", "ok")
    assert pair([(INSERT, [(200, bytearray(b"xy"), True, None, 2**63 - 1)])]) == ("ok", "ok")


@pytest.mark.parametrize(
    "bad_row",
    [
        (1, 2, 3, 4),  # short
        (1, 2, 3, 4, 5, 6),  # long
        (1, [2], 3, 4, 5),  # a type SQLite has no column for
        (1, 2**63, 3, 4, 5),  # past INTEGER
        (1, "lone \udcff surrogate", 3, 4, 5),
        (1, 2, 3, 4, object()),
    ],
)
@pytest.mark.parametrize("good_rows", [0, 40])  # before it: none, or a multi-row run's worth
def test_a_bad_row_refuses_the_whole_batch_alike(
    pair: Callable[[Steps], tuple[str, str]], bad_row: tuple[Any, ...], good_rows: int
) -> None:
    good = [(k, k, "x", b"y", 0.5) for k in range(10, 10 + good_rows)]
    steps: Steps = [(UPSERT, [("kept?", 1)]), (INSERT, [*good, bad_row])]
    native, twin = pair(steps)
    assert native == twin != "ok"


def test_sqlite_failures_roll_back_and_keep_their_class(
    pair: Callable[[Steps], tuple[str, str]],
) -> None:
    assert pair([(INSERT, [(1, 1, 1, 1, 1)])]) == ("ok", "ok")
    # a constraint failing in the second step undoes the first step too
    duplicate: Steps = [(UPSERT, [("z", 5)]), (INSERT, [(2, 2, 2, 2, 2), (1, 0, 0, 0, 0)])]
    assert pair(duplicate) == ("IntegrityError", "IntegrityError")
    assert pair([(INSERT.replace(" t ", " missing "), [(3, 3, 3, 3, 3)])]) == (
        "OperationalError",
        "OperationalError",
    )
    two = f"{DELETE}; {DELETE}"
    assert pair([(two, [(1,)])]) == ("ProgrammingError", "ProgrammingError")
    # inside a 32-row step (the compiled writer's and the twin's multi-row INSERT)
    clash = [(k, k, k, k, k) for k in range(100, 140)]
    clash[20] = (110, 0, 0, 0, 0)
    assert pair([(UPSERT, [("y", 1)]), (INSERT, clash)]) == ("IntegrityError", "IntegrityError")
    assert pair([(INSERT, [(4, 4, 4, 4, 4)])]) == ("ok", "ok")  # still usable after all that


@pytest.mark.parametrize("face", FACES)
def test_closed_and_refused_settings(tmp_path: Path, face: str) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        FACES[face](str(tmp_path / "x.db"), "SOMETIMES")
    writer, _ = fresh(tmp_path, face)
    writer.close()
    writer.close()  # twice is harmless
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        writer.write([])


@pytest.mark.parametrize("face", FACES)
def test_opens_in_wal_mode_with_the_given_synchronous(tmp_path: Path, face: str) -> None:
    writer, path = fresh(tmp_path, face)
    writer.write([(INSERT, [(1, 1, 1, 1, 1)])])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    writer.close()


@pytest.mark.parametrize("face", FACES)
def test_other_threads_run_while_it_waits_and_a_second_write_is_refused(
    tmp_path: Path, face: str
) -> None:
    writer, path = fresh(tmp_path, face)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's BEGIN IMMEDIATE now waits (busy timeout)
    failed: list[BaseException] = []

    def write() -> None:
        try:
            writer.write([(INSERT, [(7, 7, 7, 7, 7)])])
        except BaseException as exc:  # reported below
            failed.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + 5
    while not writer.busy and time.monotonic() < deadline:
        time.sleep(0)  # this thread runs: the waiting writer does not hold the GIL
    assert writer.busy
    with pytest.raises(RuntimeError, match="another thread"):
        writer.write([])
    with pytest.raises(RuntimeError, match="another thread"):
        writer.close()
    blocker.execute("ROLLBACK")
    thread.join(10)
    assert not thread.is_alive() and not failed
    assert not writer.busy
    assert [row[1] for row in dump(path)] == [7]
    blocker.close()
    writer.close()


def test_only_dml_and_the_batch_stays_one_transaction(
    pair: Callable[[Steps], tuple[str, str]],
) -> None:
    # a COMMIT among the steps would end the transaction midway: refused, nothing written
    ending: Steps = [(INSERT, [(1, 1, 1, 1, 1)]), ("COMMIT", [()]), (INSERT, [(1, 0, 0, 0, 0)])]
    assert pair(ending) == ("ProgrammingError", "ProgrammingError")
    assert pair([("SELECT k FROM t WHERE k = ?", [(1,)])]) == ("ProgrammingError",) * 2
    assert pair([("SELEC garbage", [(1,)])]) == ("OperationalError",) * 2
    # a step without rows prepares nothing, its SQL unread
    assert pair([("SELEC garbage", []), (INSERT, [(2, 2, 2, 2, 2)])]) == ("ok", "ok")


def test_steps_fail_in_order_as_in_the_twin(pair: Callable[[Steps], tuple[str, str]]) -> None:
    assert pair([(INSERT, [(1, 1, 1, 1, 1)])]) == ("ok", "ok")
    # the first step's constraint fails before the second step's bad value is read
    steps: Steps = [(INSERT, [(1, 0, 0, 0, 0)]), (INSERT, [(2, [2], 0, 0, 0)])]
    assert pair(steps) == ("IntegrityError", "IntegrityError")
    missing: Steps = [(INSERT, [(1, 0, 0, 0, 0)]), (INSERT.replace(" t ", " gone "), [(3,) * 5])]
    assert pair(missing) == ("IntegrityError", "IntegrityError")
    # datatype mismatch: text for an INTEGER PRIMARY KEY
    assert pair([(INSERT, [("not a key", 0, 0, 0, 0)])]) == ("IntegrityError", "IntegrityError")


class Conforming:
    def __conform__(self, protocol: object) -> str:
        return "conformed"


def test_values_go_through_the_sqlite3_modules_adapters(
    pair: Callable[[Steps], tuple[str, str]],
) -> None:
    rows = [(1, Conforming(), datetime.date(2026, 11, 28), memoryview(b"ab"), 1.0)]
    assert pair([(INSERT, rows)]) == ("ok", "ok")


@pytest.mark.parametrize("face", FACES)
def test_refuses_what_it_cannot_open(tmp_path: Path, face: str) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file, not even close" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        FACES[face](str(garbage))
    with pytest.raises(ValueError, match="null"):
        FACES[face](str(tmp_path / "ledger.db\0.bak"))
    with pytest.raises(TypeError):
        FACES[face](str(tmp_path / "x.db"), 1)
    writer, _ = fresh(tmp_path, face)
    with pytest.raises(RuntimeError, match="already open"):
        writer.__init__(str(tmp_path / "other.db"))
    writer.close()


@pytest.mark.parametrize("face", FACES)
def test_opening_waits_for_a_lock_held_elsewhere(tmp_path: Path, face: str) -> None:
    writer, path = fresh(tmp_path, face)
    writer.close()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, lambda: blocker.execute("ROLLBACK"))
    release.start()
    try:
        FACES[face](str(path)).close()  # within the 5 s busy timeout: no "database is locked"
    finally:
        release.join()
        blocker.close()
