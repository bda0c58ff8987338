# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
"""History rows as Postgres binary ``COPY`` data: the compiled twin of
``copy_codec_py.py``, which specifies the format and the column layout.

One pass over the rows into one growing buffer, written through a position:
big-endian integers stored by byte swap, text copied from its cached UTF-8
form, bytea copied as is.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    bint PyTuple_Check(object o)

cdef extern from *:
    """
    #include <cstring>
    // big-endian stores at an unaligned position (a byte swap on little-endian hosts)
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define COPY_BE(bits, v) (v)
    #else
    #define COPY_BE(bits, v) __builtin_bswap##bits(v)
    #endif
    static inline void copy_be16(char* p, uint16_t v) { v = COPY_BE(16, v); memcpy(p, &v, 2); }
    static inline void copy_be32(char* p, uint32_t v) { v = COPY_BE(32, v); memcpy(p, &v, 4); }
    static inline void copy_be64(char* p, uint64_t v) { v = COPY_BE(64, v); memcpy(p, &v, 8); }
    """
    void copy_be16(char* p, uint16_t v) noexcept nogil
    void copy_be32(char* p, uint32_t v) noexcept nogil
    void copy_be64(char* p, uint64_t v) noexcept nogil

cdef enum:
    FIELD_COUNT = 19
    INT_FIELD_MAX = 12  # a length word and eight bytes

# one letter per history column (see the twin's LAYOUT)
cdef const char *_LAYOUT = b"qqhizztzqtqtqqqtbbt"
cdef const char *_HEADER = b"PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"
cdef int _HEADER_LEN = 19


# The output grows in one buffer written through a position: each field first
# makes room for itself, then stores its bytes (a std::string append per
# two to eight bytes cost more than the fields themselves).
cdef struct Out:
    char* data
    size_t size
    size_t capacity


cdef int _room(Out* out, size_t more) except -1:
    if out.size + more <= out.capacity:
        return 0
    cdef size_t capacity = max(out.capacity * 2, out.size + more)
    cdef char* data = <char*>PyMem_Realloc(out.data, capacity)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.capacity = capacity
    return 0


cdef inline void _null(Out* out) noexcept:
    copy_be32(out.data + out.size, 0xFFFFFFFFu)
    out.size += 4


cdef int _field(Out* out, char kind, object value, int64_t* as_int) except -1:
    """Append one field; an integer field's value is also stored in ``as_int``."""
    cdef Py_ssize_t n
    cdef const char *s
    cdef int overflow = 0
    cdef long long v
    if kind == c't' or kind == c'b':
        if value is None:
            _room(out, 4)
            _null(out)
            return 0
        if kind == c't':
            if not PyUnicode_Check(value):
                raise TypeError(f"a text column takes str or None, not {type(value).__name__}")
            s = PyUnicode_AsUTF8AndSize(value, &n)
        else:
            if type(value) is not bytes:
                raise TypeError(f"a bytea column takes bytes or None, not {type(value).__name__}")
            s = PyBytes_AS_STRING(value)
            n = PyBytes_GET_SIZE(value)
        _room(out, 4 + <size_t>n)
        copy_be32(out.data + out.size, <uint32_t>n)
        memcpy(out.data + out.size + 4, s, n)
        out.size += 4 + n
        return 0
    if not PyLong_Check(value):
        raise TypeError(f"an integer column takes int, not {type(value).__name__}")
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    _room(out, INT_FIELD_MAX)
    cdef char* at = out.data + out.size
    if kind == c'z' and not overflow and v == 0:
        _null(out)
        as_int[0] = 0
        return 0
    if kind == c'q' or kind == c'z':
        if overflow:
            raise OverflowError(f"{value} does not fit a 64-bit column")
        copy_be32(at, 8)
        copy_be64(at + 4, <uint64_t>v)
        out.size += 12
    elif kind == c'h':
        if overflow or not -32768 <= v <= 32767:
            raise OverflowError(f"{value} does not fit a 16-bit column")
        copy_be32(at, 2)
        copy_be16(at + 4, <uint16_t>v)
        out.size += 6
    else:
        if overflow or not -2147483648 <= v <= 2147483647:
            raise OverflowError(f"{value} does not fit a 32-bit column")
        copy_be32(at, 4)
        copy_be32(at + 4, <uint32_t>v)
        out.size += 8
    as_int[0] = v
    return 0


@cython.final
cdef class CopyCodec:
    def history(self, rows, floor, terminal):
        # a tuple of its own: ``terminal``'s code, run per row, cannot shorten it
        rows = tuple(rows)
        cdef Py_ssize_t i, n = len(rows)
        cdef int f
        cdef bint is_tuple
        cdef int64_t ints[FIELD_COUNT]
        cdef int overflow = 0
        # jobs numbered below the floor: compared as C ints (a floor past the
        # int64 range puts every row, or none, below it)
        cdef long long low = PyLong_AsLongLongAndOverflow(floor, &overflow)
        revived = []
        cdef Out out
        # a drained job's row is 166 bytes (worker "worker-1", no output): most
        # batches never grow the buffer
        out.capacity = _HEADER_LEN + n * 192 + 2
        out.data = <char*>PyMem_Malloc(out.capacity)
        if out.data == NULL:
            raise MemoryError()
        out.size = 0
        try:
            memcpy(out.data, _HEADER, _HEADER_LEN)
            out.size = _HEADER_LEN
            for i in range(n):
                row = <object>PyTuple_GET_ITEM(rows, i)
                is_tuple = PyTuple_Check(row)
                if (PyTuple_GET_SIZE(row) if is_tuple else len(row)) != FIELD_COUNT:
                    raise ValueError(f"a history row has {FIELD_COUNT} fields, not {len(row)}")
                _room(&out, 2)
                copy_be16(out.data + out.size, FIELD_COUNT)
                out.size += 2
                for f in range(FIELD_COUNT):
                    if is_tuple:
                        _field(&out, _LAYOUT[f], <object>PyTuple_GET_ITEM(row, f), &ints[f])
                    else:
                        _field(&out, _LAYOUT[f], row[f], &ints[f])
                if (overflow > 0 or (overflow == 0 and ints[0] < low)) and (
                    row[2] not in terminal
                ):
                    revived.append(row[0])
            _room(&out, 2)
            copy_be16(out.data + out.size, 0xFFFF)
            out.size += 2
            return PyBytes_FromStringAndSize(out.data, out.size), revived
        finally:
            PyMem_Free(out.data)
