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
thread at a time, which a guard enforces. Steps run in order, each gathered
then written, so a batch fails where and as the twin's does.

The kernel links the system's libsqlite3; it refuses to load (and the twin is
used) unless the sqlite3 module runs on that very copy: two copies of SQLite
on one database file in one process can corrupt it.

Prepared statements are kept per SQL text for the writer's life; a plain
``INSERT … VALUES (?, …)`` also gets a 32-row form, as in the twin: one step
per row made SQLite open the table's and its indexes' cursors for every row,
which cost a job insert 3.9 µs against 1.6 (docs/performance.md, session 8).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check, PyFloat_CheckExact
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check, PyLong_CheckExact
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_Check, PyUnicode_CheckExact
from libc.stdint cimport int64_t
from libc.string cimport strncpy, strspn
from libcpp.string cimport string
from libcpp.vector cimport vector

import ctypes
import os
import sqlite3

import _sqlite3

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL

from .sqlite_writer_py import BUSY_TIMEOUT_MS, SYNCHRONOUS, _is_dml, _multi_row
from .sqlite_writer_py import ROWS_PER_INSERT as _ROWS_PER_INSERT

cdef size_t ROWS_PER_INSERT = _ROWS_PER_INSERT

# SQLite takes a string or blob length as an int
cdef Py_ssize_t MAX_LENGTH = 0x7FFFFFFF


def _one_sqlite() -> bool:
    """Whether the sqlite3 module and this kernel call the same copy of SQLite."""
    try:
        theirs = ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion
    except (OSError, AttributeError):  # not found, or not exported: a copy of its own
        return False
    return ctypes.cast(theirs, ctypes.c_void_p).value == <size_t><void *>sqlite3_libversion


if not _one_sqlite():
    raise ImportError(
        "the sqlite3 module runs on a copy of SQLite of its own, not the system's "
        "libsqlite3 this kernel links: two copies on one database file can corrupt it"
    )


def _error_class(int code):
    """The sqlite3 module's exception class for an SQLite result code."""
    primary = code & 0xFF
    if primary in (SQLITE_INTERNAL, SQLITE_NOTFOUND):
        return sqlite3.InternalError
    if primary == SQLITE_NOMEM:
        return MemoryError
    if primary in (
        SQLITE_ERROR, SQLITE_PERM, SQLITE_ABORT, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY,
        SQLITE_INTERRUPT, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL,
        SQLITE_EMPTY, SQLITE_SCHEMA,
    ):
        return sqlite3.OperationalError
    if primary == SQLITE_TOOBIG:
        return sqlite3.DataError
    if primary in (SQLITE_CONSTRAINT, SQLITE_MISMATCH):
        return sqlite3.IntegrityError
    if primary in (SQLITE_MISUSE, SQLITE_RANGE):
        return sqlite3.InterfaceError
    return sqlite3.DatabaseError


@cython.final
@cython.auto_pickle(False)
cdef class SqliteWriter:
    def __init__(self, path, str synchronous="FULL"):
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        if self._db != NULL:
            raise RuntimeError("SqliteWriter is already open")
        cdef bytes name = os.fsencode(path)
        if b"\0" in name:
            raise ValueError("embedded null character in path")
        cdef sqlite3_db *db = NULL
        flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        cdef int rc = sqlite3_open_v2(name, &db, flags, NULL)
        if rc != SQLITE_OK:
            message = sqlite3_errmsg(db).decode() if db != NULL else "out of memory"
            sqlite3_close_v2(db)
            raise _error_class(rc)(message)
        self._db = db
        self._index = {}
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS)  # first: the pragmas may wait on a lock
        try:
            self._exec(b"PRAGMA journal_mode=WAL")
            self._exec(f"PRAGMA synchronous={synchronous.upper()}".encode())
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

    def write(self, steps):
        """Run every step's statement once per row, all in one transaction."""
        if self._db == NULL:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if self._busy:
            raise RuntimeError("SqliteWriter is writing in another thread")
        cdef int rc
        self._busy = True
        try:
            with nogil:
                rc = self._exec_nogil(b"BEGIN IMMEDIATE")
            if rc != SQLITE_OK:
                self._raise()
            try:
                for sql, rows in steps:
                    self._step(sql, rows)
                with nogil:
                    rc = self._commit()
                if rc != SQLITE_OK:
                    self._raise()
            except BaseException:
                with nogil:
                    self._roll_back()
                raise
        finally:
            self._busy = False

    cdef int _step(self, str sql, rows) except -1:
        """One step: its values copied into C memory (Python code may run here: a
        row's iteration, an object's adapter or buffer), then written without the GIL."""
        cdef vector[Value] values
        cdef string buffer
        cdef size_t count = 0, width = 0
        cdef int rc
        cdef sqlite3_stmt *single = NULL
        cdef sqlite3_stmt *many = NULL
        cdef Py_ssize_t j, n
        for row in rows:
            if count == 0:  # a step without rows prepares nothing, as in the twin
                single = self._statement(sql)
                width = sqlite3_bind_parameter_count(single)
            if not PyTuple_Check(row):
                row = tuple(row)  # a snapshot: a list could change while it is read
            n = PyTuple_GET_SIZE(row)
            if <size_t>n != width:
                raise sqlite3.ProgrammingError(
                    f"Incorrect number of bindings supplied. The current statement uses "
                    f"{width}, and there are {n} supplied."
                )
            for j in range(n):
                values.push_back(_value(<object>PyTuple_GET_ITEM(row, j), j, &buffer))
            count += 1
        if count == 0:
            return 0
        if count >= ROWS_PER_INSERT:
            many = self._many(sql, width)
        with nogil:
            rc = self._write_rows(single, many, count, width, values, buffer)
        if rc != SQLITE_OK:
            self._raise()
        return 0

    cdef sqlite3_stmt *_statement(self, str sql) except NULL:
        """The prepared one-row statement of ``sql``, prepared on first use."""
        found = self._index.get(sql)
        if found is not None:
            return self._stmts[<size_t>found]
        stmt = self._prepare(sql)
        if not _is_dml(sql):  # what the sqlite3 module's executemany refuses, once prepared
            sqlite3_finalize(stmt)
            raise sqlite3.ProgrammingError("executemany() can only execute DML statements.")
        self._stmts.push_back(stmt)
        self._index[sql] = self._stmts.size() - 1
        return stmt

    cdef sqlite3_stmt *_many(self, str sql, size_t width) except? NULL:
        """The ROWS_PER_INSERT-row statement of a plain INSERT … VALUES (?, …) (its
        placeholder group repeated), prepared on first use, or NULL when ``sql`` is
        not one: one step per row made SQLite open the table's and its indexes'
        cursors for every row."""
        key = (sql, ROWS_PER_INSERT)
        found = self._index.get(key)
        if found is None:
            plan = _multi_row(sql)
            found = -1
            if plan is not None and plan[1] == width:
                stmt = self._prepare(plan[0])
                if <size_t>sqlite3_bind_parameter_count(stmt) == ROWS_PER_INSERT * width:
                    self._stmts.push_back(stmt)
                    found = self._stmts.size() - 1
                else:
                    sqlite3_finalize(stmt)
            self._index[key] = found
        if found < 0:
            return NULL
        return self._stmts[<size_t>found]

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

    cdef int _write_rows(
        self,
        sqlite3_stmt *single,
        sqlite3_stmt *many,
        size_t rows,
        size_t width,
        const vector[Value] &values,
        const string &buffer,
    ) noexcept nogil:
        """Bind and run every row (whole groups through ``many`` when given):
        SQLITE_OK, or the failure's code with its message kept."""
        cdef size_t row = 0, v = 0
        cdef int rc = SQLITE_OK
        if many != NULL:
            while rc == SQLITE_OK and rows - row >= ROWS_PER_INSERT:
                rc = self._execute(many, ROWS_PER_INSERT * width, values, &v, buffer)
                row += ROWS_PER_INSERT
            sqlite3_clear_bindings(many)  # no pointer into the batch's buffer outlives it
        while rc == SQLITE_OK and row < rows:
            rc = self._execute(single, width, values, &v, buffer)
            row += 1
        sqlite3_clear_bindings(single)
        return rc

    cdef int _execute(
        self,
        sqlite3_stmt *stmt,
        size_t params,
        const vector[Value] &values,
        size_t *next_value,
        const string &buffer,
    ) noexcept nogil:
        """Bind ``params`` values from ``values[*next_value]`` on, run ``stmt``, reset it."""
        cdef size_t column
        for column in range(params):
            if _bind(stmt, <int>column + 1, values[next_value[0]], buffer) != SQLITE_OK:
                return self._fail(stmt)
            next_value[0] += 1
        if _run(stmt) != SQLITE_DONE:
            return self._fail(stmt)
        sqlite3_reset(stmt)
        return SQLITE_OK

    cdef int _fail(self, sqlite3_stmt *stmt) noexcept nogil:
        """Keep the failure's code and message, then reset ``stmt``."""
        cdef int rc = self._remember_error()
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        return rc

    cdef int _exec_nogil(self, const char *sql) noexcept nogil:
        if sqlite3_exec(self._db, sql, NULL, NULL, NULL) != SQLITE_OK:
            return self._remember_error()
        return SQLITE_OK

    cdef int _commit(self) noexcept nogil:
        if sqlite3_get_autocommit(self._db):  # the transaction ended before the batch did
            self._errcode = SQLITE_ERROR
            strncpy(self._errmsg, b"the batch's transaction ended before its COMMIT", 255)
            return SQLITE_ERROR
        return self._exec_nogil(b"COMMIT")

    cdef void _roll_back(self) noexcept nogil:
        if not sqlite3_get_autocommit(self._db):
            sqlite3_exec(self._db, b"ROLLBACK", NULL, NULL, NULL)

    cdef int _remember_error(self) noexcept nogil:
        self._errcode = sqlite3_extended_errcode(self._db)
        strncpy(self._errmsg, sqlite3_errmsg(self._db), 255)
        self._errmsg[255] = 0
        return self._errcode if self._errcode != SQLITE_OK else SQLITE_ERROR

    cdef int _raise(self) except -1:
        raise _error_class(self._errcode)((<bytes>self._errmsg).decode("utf-8", "replace"))


cdef inline int _run(sqlite3_stmt *stmt) noexcept nogil:
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
    """One Python value as a bindable C value (text and bytes copied to ``buffer``).

    As the sqlite3 module does, a value of any type but exactly None, int, float,
    str or bytes goes through its adapters (``sqlite3.register_adapter``,
    ``__conform__``) first."""
    cdef Value value
    if not (
        item is None
        or PyLong_CheckExact(item)
        or PyUnicode_CheckExact(item)
        or PyBytes_CheckExact(item)
        or PyFloat_CheckExact(item)
    ):
        item = sqlite3.adapt(item, sqlite3.PrepareProtocol, item)
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
        if size > MAX_LENGTH:
            raise OverflowError("string longer than INT_MAX bytes")
        value.offset = _append(buffer, data, size)
        value.length = size
    elif PyBytes_CheckExact(item):
        value.kind = BLOB
        if PyBytes_GET_SIZE(item) > MAX_LENGTH:
            raise OverflowError("BLOB longer than INT_MAX bytes")
        value.offset = _append(buffer, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item))
        value.length = PyBytes_GET_SIZE(item)
    elif PyFloat_Check(item):
        value.kind = REAL
        value.real = PyFloat_AS_DOUBLE(item)
    elif PyObject_CheckBuffer(item):
        value.kind = BLOB
        PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
        try:
            if view.len > MAX_LENGTH:
                raise OverflowError("BLOB longer than INT_MAX bytes")
            value.offset = _append(buffer, <const char *>view.buf, view.len)
            value.length = view.len
        finally:
            PyBuffer_Release(&view)
    else:
        raise sqlite3.ProgrammingError(
            f"Error binding parameter {j + 1}: type '{type(item).__name__}' is not supported"
        )
    return value


cdef inline size_t _append(string *buffer, const char *data, Py_ssize_t size) noexcept:
    cdef size_t offset = buffer.size()
    buffer.append(data, <size_t>size)
    return offset
