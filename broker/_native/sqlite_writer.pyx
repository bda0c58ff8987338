# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
"""Batches written to SQLite: the compiled twin of ``sqlite_writer_py.py``.

A flush through the sqlite3 module binds every value from Python with the GIL
held, each bind taking the connection's mutex, and gives the GIL back and takes
it again around every statement step: with the event loop's thread busy on the
other core, the ledger's thread spent 2.5 µs per history row where the same
writes alone took 1.9 (docs/performance.md, session 8). Here a batch's values
are first copied into C memory (with the GIL, a pass over the rows), then
bound, stepped and committed with the GIL released, on a connection opened
without SQLite's mutex (``SQLITE_OPEN_NOMUTEX``): the writer is used from one
thread at a time, which a guard enforces.

Prepared statements are kept per SQL text for the writer's life; a plain
``INSERT … VALUES (?, …)`` also gets a 32-row form, as in the twin: one step
per row made SQLite open the table's and its indexes' cursors for every row,
which cost a job insert 3.9 µs against 1.6 (docs/performance.md, session 8).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t
from libc.string cimport strspn
from libcpp.string cimport string
from libcpp.vector cimport vector

import os
import sqlite3

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL

from .sqlite_writer_py import BUSY_TIMEOUT_MS, SYNCHRONOUS, _multi_row
from .sqlite_writer_py import ROWS_PER_INSERT as _ROWS_PER_INSERT

cdef size_t ROWS_PER_INSERT = _ROWS_PER_INSERT

# SQLite takes a string or blob length as an int
cdef Py_ssize_t MAX_LENGTH = 0x7FFFFFFF


@cython.final
@cython.auto_pickle(False)
cdef class SqliteWriter:
    def __init__(self, path, str synchronous="FULL"):
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        if self._db != NULL:
            raise RuntimeError("SqliteWriter is already open")
        cdef bytes name = os.fsencode(path)
        cdef sqlite3_db *db = NULL
        flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        if sqlite3_open_v2(name, &db, flags, NULL) != SQLITE_OK:
            message = sqlite3_errmsg(db).decode() if db != NULL else "out of memory"
            sqlite3_close_v2(db)
            raise sqlite3.OperationalError(message)
        self._db = db
        self._index = {}
        try:
            self._exec(b"PRAGMA journal_mode=WAL")
            self._exec(f"PRAGMA synchronous={synchronous.upper()}".encode())
            sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS)
        except BaseException:
            self.close()
            raise

    def __dealloc__(self):
        self._release()

    @property
    def busy(self):
        """A write is running (in some thread)."""
        return self._busy

    cdef void _release(self) noexcept:
        cdef size_t i
        for i in range(self._stmts.size()):
            sqlite3_finalize(self._stmts[i])
        self._stmts.clear()
        if self._db != NULL:
            sqlite3_close_v2(self._db)
            self._db = NULL

    def close(self):
        if self._busy:
            raise RuntimeError("SqliteWriter is writing in another thread")
        self._release()
        self._index = {}

    cdef int _exec(self, const char *sql) except -1:
        if sqlite3_exec(self._db, sql, NULL, NULL, NULL) != SQLITE_OK:
            self._remember_error()
            self._raise()
        return 0

    cdef int _statements(self, str sql, Run *run) except -1:
        """Point ``run`` at the prepared statements of ``sql`` (prepared on first use):
        one row per step, and for a plain INSERT … VALUES (?, …) ROWS_PER_INSERT rows
        per step (its placeholder group repeated), which saves SQLite opening the
        table's and its indexes' cursors for every row."""
        found = self._index.get(sql)
        if found is None:
            single = self._stmts.size()
            self._stmts.push_back(self._prepare(sql))
            many = -1
            plan = _multi_row(sql)
            if plan is not None:
                many = self._stmts.size()
                self._stmts.push_back(self._prepare(plan[0]))
            found = self._index[sql] = (single, many)
        run.stmt = self._stmts[<size_t>found[0]]
        run.many = NULL
        if found[1] >= 0:
            run.many = self._stmts[<size_t>found[1]]
        return 0

    cdef sqlite3_stmt *_prepare(self, str sql) except NULL:
        cdef bytes text = sql.encode()
        cdef const char *tail = NULL
        cdef sqlite3_stmt *stmt = NULL
        if sqlite3_prepare_v2(self._db, text, len(text), &stmt, &tail) != SQLITE_OK:
            self._remember_error()
            sqlite3_finalize(stmt)
            self._raise()
        if stmt == NULL:
            raise sqlite3.ProgrammingError("no SQL statement to run")
        if tail[strspn(tail, b" \t\r\n;")] != 0:
            sqlite3_finalize(stmt)
            raise sqlite3.ProgrammingError("You can only execute one statement at a time.")
        return stmt

    def write(self, steps):
        """Run every step's statement once per row, all in one transaction."""
        if self._db == NULL:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if self._busy:
            raise RuntimeError("SqliteWriter is writing in another thread")
        cdef vector[Run] runs
        cdef vector[Value] values
        cdef string buffer
        cdef int rc
        self._busy = True
        try:
            for sql, rows in steps:
                self._gather(sql, rows, &runs, &values, &buffer)
            with nogil:
                rc = self._apply(runs, values, buffer)
            if rc != SQLITE_OK:
                self._raise()
        finally:
            self._busy = False

    cdef int _gather(
        self, str sql, rows, vector[Run] *runs, vector[Value] *values, string *buffer
    ) except -1:
        """Copy one step's values into C memory (Python code may run here: a
        row's sequence protocol, an object's buffer)."""
        cdef Run run
        cdef Py_ssize_t j, n
        self._statements(sql, &run)
        run.width = sqlite3_bind_parameter_count(run.stmt)
        run.rows = 0
        for row in rows:
            fast = PySequence_Fast(row, "a row must be a sequence")
            n = PySequence_Fast_GET_SIZE(fast)
            if n != run.width:
                raise sqlite3.ProgrammingError(
                    f"Incorrect number of bindings supplied. The current statement uses "
                    f"{run.width}, and there are {n} supplied."
                )
            for j in range(n):
                values.push_back(_value(<object>PySequence_Fast_GET_ITEM(fast, j), j, buffer))
            run.rows += 1
        runs.push_back(run)
        return 0

    cdef int _apply(
        self, const vector[Run] &runs, const vector[Value] &values, const string &buffer
    ) noexcept nogil:
        """BEGIN IMMEDIATE, every row of every run, COMMIT: SQLITE_OK, or the
        failure's code with the transaction rolled back and its message kept."""
        cdef size_t r, row, v = 0
        cdef int column, rc
        cdef sqlite3_stmt *stmt
        if sqlite3_exec(self._db, b"BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK:
            return self._remember_error()
        for r in range(runs.size()):
            row = 0
            stmt = runs[r].many
            if stmt != NULL:
                while runs[r].rows - row >= ROWS_PER_INSERT:
                    for column in range(ROWS_PER_INSERT * runs[r].width):
                        if _bind(stmt, column + 1, values[v], buffer) != SQLITE_OK:
                            return self._abandon(stmt)
                        v += 1
                    if _step(stmt) != SQLITE_DONE:
                        return self._abandon(stmt)
                    sqlite3_reset(stmt)
                    row += ROWS_PER_INSERT
            stmt = runs[r].stmt
            while row < runs[r].rows:
                for column in range(runs[r].width):
                    if _bind(stmt, column + 1, values[v], buffer) != SQLITE_OK:
                        return self._abandon(stmt)
                    v += 1
                if _step(stmt) != SQLITE_DONE:
                    return self._abandon(stmt)
                sqlite3_reset(stmt)
                row += 1
        if sqlite3_exec(self._db, b"COMMIT", NULL, NULL, NULL) != SQLITE_OK:
            return self._abandon(NULL)
        return SQLITE_OK

    cdef int _abandon(self, sqlite3_stmt *stmt) noexcept nogil:
        """Keep the failure, reset ``stmt``, roll back what the batch did."""
        cdef int rc = self._remember_error()
        if stmt != NULL:
            sqlite3_reset(stmt)
        if not sqlite3_get_autocommit(self._db):
            sqlite3_exec(self._db, b"ROLLBACK", NULL, NULL, NULL)
        return rc

    cdef int _remember_error(self) noexcept nogil:
        self._errcode = sqlite3_extended_errcode(self._db)
        self._errmsg = string(sqlite3_errmsg(self._db))
        return self._errcode if self._errcode != SQLITE_OK else -1

    cdef int _raise(self) except -1:
        message = self._errmsg.decode("utf-8", "replace")
        if self._errcode & 0xFF == SQLITE_CONSTRAINT:
            raise sqlite3.IntegrityError(message)
        raise sqlite3.OperationalError(message)


cdef inline int _step(sqlite3_stmt *stmt) noexcept nogil:
    """Run a statement to its end: SQLITE_DONE, or the failure's code."""
    cdef int rc = sqlite3_step(stmt)
    while rc == SQLITE_ROW:
        rc = sqlite3_step(stmt)
    return rc


cdef inline int _bind(sqlite3_stmt *stmt, int index, const Value &value, const string &buffer) noexcept nogil:
    # SQLITE_STATIC (a null destructor): the buffer outlives the statement's use of it
    if value.kind == INTEGER:
        return sqlite3_bind_int64(stmt, index, value.integer)
    if value.kind == TEXT:
        return sqlite3_bind_text(stmt, index, buffer.data() + value.offset, <int>value.length, NULL)
    if value.kind == NULL_VALUE:
        return sqlite3_bind_null(stmt, index)
    if value.kind == BLOB:
        return sqlite3_bind_blob(stmt, index, buffer.data() + value.offset, <int>value.length, NULL)
    return sqlite3_bind_double(stmt, index, value.real)


cdef Value _value(object item, Py_ssize_t j, string *buffer) except *:
    """One Python value as a bindable C value (text and bytes copied to ``buffer``)."""
    cdef Value value
    cdef int overflow = 0
    cdef Py_ssize_t size = 0
    cdef const char *data
    cdef Py_buffer view
    value.integer = 0
    value.real = 0
    value.offset = 0
    value.length = 0
    if item is None:
        value.kind = NULL_VALUE
    elif PyLong_Check(item):
        value.kind = INTEGER
        value.integer = PyLong_AsLongLongAndOverflow(item, &overflow)
        if overflow:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
    elif PyUnicode_Check(item):
        value.kind = TEXT
        data = PyUnicode_AsUTF8AndSize(item, &size)
        value.offset = _append(buffer, data, size)
        value.length = size
    elif PyBytes_CheckExact(item):
        value.kind = BLOB
        value.offset = _append(buffer, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item))
        value.length = PyBytes_GET_SIZE(item)
    elif PyFloat_Check(item):
        value.kind = REAL
        value.real = PyFloat_AS_DOUBLE(item)
    elif PyObject_CheckBuffer(item):
        value.kind = BLOB
        PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
        try:
            value.offset = _append(buffer, <const char *>view.buf, view.len)
            value.length = view.len
        finally:
            PyBuffer_Release(&view)
    else:
        raise sqlite3.ProgrammingError(
            f"Error binding parameter {j + 1}: type '{type(item).__name__}' is not supported"
        )
    return value


cdef size_t _append(string *buffer, const char *data, Py_ssize_t size) except? 0:
    if size > MAX_LENGTH:
        raise sqlite3.DataError("string or blob too big")
    cdef size_t offset = buffer.size()
    buffer.append(data, <size_t>size)
    return offset
