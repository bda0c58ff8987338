# cython: language_level=3
"""Python ints -> C int64 the way the twins' dicts and range checks see them.

Shared by the kernels (inline, so each one compiles its own copy of these few
lines instead of repeating their source).
"""

from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t


cdef inline int64_t checked_int64(object value, str what) except -1:
    """``value`` as int64, ValueError unless it is in [0, 2**63 - 1]."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0:
        raise ValueError(f"{what} must be a non-negative int64")
    return v


cdef inline int64_t clamped_int64(object value) except? -1:
    """``value`` as int64, saturating outside the int64 range."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow > 0:
        return INT64_MAX
    if overflow < 0:
        return INT64_MIN
    return v


cdef inline bint dict_key(object o, int64_t* out) except -1:
    """Store the int64 that ``o`` stands for as a dict key; False when there is none.

    A non-int finds the int it equals (1.0 finds 1), like a dict lookup; an
    unhashable one raises TypeError, like a dict lookup."""
    cdef int overflow = 0
    cdef long long value
    if PyLong_Check(o):
        value = PyLong_AsLongLongAndOverflow(o, &overflow)
        if overflow:
            return False
        out[0] = value
        return True
    cdef object h = hash(o)
    try:
        as_int = int(o)
    except Exception:
        return False
    if as_int != o or hash(as_int) != h:
        return False
    return dict_key(as_int, out)
