from libc.stdint cimport int64_t

from .lease_table cimport JobMap


cdef extern from *:
    # GCC/Clang 128-bit integer: products such as elapsed * rate and sums such
    # as now + retry_after can pass int64, where the twin's Python ints cannot
    # overflow. Cython converts it to a Python int by its size, exactly.
    ctypedef long long int128 "__int128"


cdef enum:
    # micro-tokens per token; a compile-time constant so that / and * fold
    TB_MICRO = 1000000


cdef struct Bucket:
    int64_t configured
    int64_t rate
    int64_t burst
    int64_t level  # micro-tokens, 0..burst * MICRO
    int64_t last  # ms of the last refill
    int128 paused_until  # >= 0, up to 2 * int64 max
    int64_t penalties


cdef class TokenBuckets:
    cdef int64_t _decrease
    cdef int64_t _recover
    cdef int64_t _min_rate
    cdef JobMap[Bucket] _buckets

    cdef Bucket* _bucket(self, object key) except? NULL
    cdef Bucket* _bucket_now(self, object key, object now, int64_t* t) except? NULL
