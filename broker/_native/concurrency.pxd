from libc.stdint cimport int64_t
from libcpp.unordered_map cimport unordered_map


cdef enum:
    CC_UNLIMITED = -1


# A key has an entry while it has something in flight or a limit.
cdef struct Counter:
    int64_t inflight
    int64_t limit  # CC_UNLIMITED when none


cdef class ConcurrencyCounters:
    cdef unordered_map[int64_t, Counter] _counters

    cdef Counter* _counter(self, object key) except? NULL
    cdef int64_t _grant(self, int64_t key, int64_t n) noexcept
    cdef void _revoke(self, int64_t key, int64_t n) noexcept
