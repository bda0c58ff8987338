# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
"""History rows as Postgres binary ``COPY`` data: the compiled twin of
``copy_codec_py.py``, which specifies the format and the column layout.

One pass over the rows into one buffer: big-endian integers written by shifts,
text copied from its cached UTF-8 form, bytea copied as is.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libcpp.string cimport string

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    bint PyTuple_Check(object o)

cdef enum:
    FIELD_COUNT = 19

# one letter per history column (see the twin's LAYOUT)
cdef const char *_LAYOUT = b"qqhizztzqtqtqqqtbbt"
cdef const char *_HEADER = b"PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"
cdef int _HEADER_LEN = 19


cdef inline void _be16(string &out, uint16_t v) noexcept:
    cdef char b[2]
    b[0] = <char>(v >> 8)
    b[1] = <char>v
    out.append(b, 2)


cdef inline void _be32(string &out, uint32_t v) noexcept:
    cdef char b[4]
    b[0] = <char>(v >> 24)
    b[1] = <char>(v >> 16)
    b[2] = <char>(v >> 8)
    b[3] = <char>v
    out.append(b, 4)


cdef inline void _be64(string &out, uint64_t v) noexcept:
    _be32(out, <uint32_t>(v >> 32))
    _be32(out, <uint32_t>v)


cdef int _field(string &out, char kind, object value) except -1:
    cdef Py_ssize_t n
    cdef const char *s
    cdef int overflow = 0
    cdef long long v
    if kind == c't' or kind == c'b':
        if value is None:
            _be32(out, 0xFFFFFFFFu)
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
        _be32(out, <uint32_t>n)
        out.append(s, n)
        return 0
    if not PyLong_Check(value):
        raise TypeError(f"an integer column takes int, not {type(value).__name__}")
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if kind == c'z' and not overflow and v == 0:
        _be32(out, 0xFFFFFFFFu)
    elif kind == c'q' or kind == c'z':
        if overflow:
            raise OverflowError(f"{value} does not fit a 64-bit column")
        _be32(out, 8)
        _be64(out, <uint64_t>v)
    elif kind == c'h':
        if overflow or not -32768 <= v <= 32767:
            raise OverflowError(f"{value} does not fit a 16-bit column")
        _be32(out, 2)
        _be16(out, <uint16_t>v)
    else:
        if overflow or not -2147483648 <= v <= 2147483647:
            raise OverflowError(f"{value} does not fit a 32-bit column")
        _be32(out, 4)
        _be32(out, <uint32_t>v)
    return 0


@cython.final
cdef class CopyCodec:
    def history(self, rows, floor, terminal):
        cdef string out
        cdef Py_ssize_t i, n = len(rows)
        cdef int f
        cdef bint is_tuple
        revived = []
        out.reserve(_HEADER_LEN + n * 200 + 2)
        out.append(_HEADER, _HEADER_LEN)
        for i in range(n):
            row = rows[i]
            if len(row) != FIELD_COUNT:
                raise ValueError(f"a history row has {FIELD_COUNT} fields, not {len(row)}")
            _be16(out, FIELD_COUNT)
            is_tuple = PyTuple_Check(row)
            for f in range(FIELD_COUNT):
                if is_tuple:
                    _field(out, _LAYOUT[f], <object>PyTuple_GET_ITEM(row, f))
                else:
                    _field(out, _LAYOUT[f], row[f])
            if row[0] < floor and row[2] not in terminal:
                revived.append(row[0])
        _be16(out, 0xFFFF)
        return PyBytes_FromStringAndSize(out.data(), out.size()), revived
