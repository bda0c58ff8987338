from libc.stdint cimport int64_t
from libcpp.string cimport string
from libcpp.vector cimport vector


cdef extern from "sqlite3.h" nogil:
    ctypedef struct sqlite3_db "sqlite3"
    ctypedef struct sqlite3_stmt
    enum:
        SQLITE_OK
        SQLITE_ERROR
        SQLITE_INTERNAL
        SQLITE_PERM
        SQLITE_ABORT
        SQLITE_BUSY
        SQLITE_LOCKED
        SQLITE_NOMEM
        SQLITE_READONLY
        SQLITE_INTERRUPT
        SQLITE_IOERR
        SQLITE_CORRUPT
        SQLITE_NOTFOUND
        SQLITE_FULL
        SQLITE_CANTOPEN
        SQLITE_PROTOCOL
        SQLITE_EMPTY
        SQLITE_SCHEMA
        SQLITE_TOOBIG
        SQLITE_CONSTRAINT
        SQLITE_MISMATCH
        SQLITE_MISUSE
        SQLITE_RANGE
        SQLITE_ROW
        SQLITE_DONE
        SQLITE_OPEN_READWRITE
        SQLITE_OPEN_CREATE
        SQLITE_OPEN_NOMUTEX
    int sqlite3_open_v2(const char *filename, sqlite3_db **db, int flags, const char *vfs)
    int sqlite3_close_v2(sqlite3_db *db)
    int sqlite3_exec(sqlite3_db *db, const char *sql, void *callback, void *arg, char **errmsg)
    int sqlite3_prepare_v2(
        sqlite3_db *db, const char *sql, int nbytes, sqlite3_stmt **stmt, const char **tail
    )
    int sqlite3_finalize(sqlite3_stmt *stmt)
    int sqlite3_reset(sqlite3_stmt *stmt)
    int sqlite3_step(sqlite3_stmt *stmt)
    int sqlite3_bind_parameter_count(sqlite3_stmt *stmt)
    int sqlite3_bind_int64(sqlite3_stmt *stmt, int index, long long value)
    int sqlite3_bind_double(sqlite3_stmt *stmt, int index, double value)
    int sqlite3_bind_text(sqlite3_stmt *stmt, int index, const char *text, int n, void *free)
    int sqlite3_bind_blob(sqlite3_stmt *stmt, int index, const void *data, int n, void *free)
    int sqlite3_bind_null(sqlite3_stmt *stmt, int index)
    int sqlite3_busy_timeout(sqlite3_db *db, int ms)
    int sqlite3_get_autocommit(sqlite3_db *db)
    int sqlite3_extended_errcode(sqlite3_db *db)
    const char *sqlite3_errmsg(sqlite3_db *db)
    const char *sqlite3_libversion()
    int sqlite3_clear_bindings(sqlite3_stmt *stmt)


cdef enum Kind:
    NULL_VALUE
    INTEGER
    REAL
    TEXT
    BLOB


cdef struct Value:
    Kind kind
    int64_t integer
    double real
    size_t offset  # TEXT and BLOB: where the bytes start in the batch's buffer
    size_t length


# the decorators (final, no pickling) are in sqlite_writer.pyx
cdef class SqliteWriter:
    cdef sqlite3_db *_db
    cdef dict _index  # SQL text -> its statement's place in _stmts; (text, rows) -> the multi-row one's (-1: none)
    cdef vector[sqlite3_stmt *] _stmts
    cdef bint _busy
    cdef int _errcode
    cdef char _errmsg[256]

    cdef void _release(self) noexcept
    cdef int _exec(self, const char *sql) except -1
    cdef int _step(self, str sql, rows) except -1
    cdef sqlite3_stmt *_statement(self, str sql) except NULL
    cdef sqlite3_stmt *_many(self, str sql, size_t width) except? NULL
    cdef sqlite3_stmt *_prepare(self, str sql) except NULL
    cdef int _write_rows(
        self,
        sqlite3_stmt *single,
        sqlite3_stmt *many,
        size_t rows,
        size_t width,
        const vector[Value] &values,
        const string &buffer,
    ) noexcept nogil
    cdef int _execute(
        self,
        sqlite3_stmt *stmt,
        size_t params,
        const vector[Value] &values,
        size_t *next_value,
        const string &buffer,
    ) noexcept nogil
    cdef int _fail(self, sqlite3_stmt *stmt) noexcept nogil
    cdef int _exec_nogil(self, const char *sql) noexcept nogil
    cdef int _commit(self) noexcept nogil
    cdef void _roll_back(self) noexcept nogil
    cdef int _remember_error(self) noexcept nogil
    cdef int _raise(self) except -1
