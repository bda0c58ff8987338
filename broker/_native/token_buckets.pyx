# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Token buckets: the compiled twin of ``token_buckets_py.py``, which is its specification.

Buckets are structs in the lease table's open-addressing ``JobMap`` keyed by
int64: a lookup mostly touches one cache line, where a node-based
``unordered_map`` took two or three dependent misses. The twin's integer
arithmetic is reproduced exactly: intermediate products and sums that may pass
int64 (``elapsed * rate``, ``n * MICRO``, ``n * step``, ``now + retry_after``)
are computed in 128 bits, and all operands are non-negative, so C division
equals Python's floor division.

Arguments are int64; ``n`` above int64 is taken as int64 max, which gives the
twin's result. ``now`` and ``retry_after`` above int64 (or ``now`` below it)
raise OverflowError where the twin would keep a Python int.
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check, PyLong_CheckExact
from libc.stdint cimport INT64_MAX, int64_t
from libcpp.vector cimport vector

MICRO = TB_MICRO

cdef int64_t _MAX_RATE = 1_000_000_000_000  # a million million milli-tokens per second
cdef int64_t _MAX_BURST = 1_000_000_000


from ._keys cimport dict_key as _as_key
from .lease_table cimport JOB_MAP_NONE


cdef inline int64_t _ranged(object value, int64_t lo, int64_t hi, str message) except? -1:
    """An int in lo..hi, else ValueError (also beyond int64, as in the twin)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < lo or v > hi:
        raise ValueError(message)
    return v


cdef inline int64_t _count(object n, str message) except? -1:
    """A count >= 0 (else ValueError); above int64 it saturates, which the callers absorb."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(n, &overflow)
    if overflow < 0 or (not overflow and v < 0):
        raise ValueError(message)
    return INT64_MAX if overflow else v


cdef inline int64_t _nonneg(object value, str message) except? -1:
    """An int >= 0 (else ValueError); above int64 it raises OverflowError."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow < 0 or (not overflow and v < 0):
        raise ValueError(message)
    if overflow:
        raise OverflowError(f"{value} does not fit in int64")
    return v


cdef inline list _as_list(object seq):
    # batches are lists in practice; indexing a typed list skips the type checks
    return seq if type(seq) is list else list(seq)


cdef inline int64_t _capped(int64_t level, int128 gain, int64_t burst) noexcept nogil:
    """min(burst * MICRO, level + gain) for gain >= 0."""
    cdef int64_t cap = burst * TB_MICRO
    if gain >= cap - level:
        return cap
    return level + <int64_t>gain


cdef inline void _refill(Bucket* bucket, int64_t now) noexcept nogil:
    # now > last >= 0, so now - last cannot overflow
    if now > bucket.last:
        bucket.level = _capped(
            bucket.level, <int128>(now - bucket.last) * bucket.rate, bucket.burst)
        bucket.last = now


cdef inline int64_t _take(Bucket* bucket, int64_t n, int64_t now, int64_t* wait) noexcept nogil:
    """Granted tokens, with the wait stored in ``wait``; -1 while the bucket is paused."""
    _refill(bucket, now)
    if now < bucket.paused_until:
        return -1
    cdef int64_t granted = min(n, bucket.level // TB_MICRO)
    bucket.level -= granted * TB_MICRO
    if granted == n:
        wait[0] = 0
    elif bucket.rate == 0:
        wait[0] = -1
    else:
        # ceil(deficit / rate) for a deficit of 1..MICRO micro-tokens
        wait[0] = (TB_MICRO - bucket.level + bucket.rate - 1) // bucket.rate
    return granted


@cython.auto_pickle(False)
cdef class TokenBuckets:
    """Adaptive token buckets keyed by int."""

    def __init__(self, decrease_permille=500, recover_permille=10, min_rate=1):
        cdef int64_t decrease = _ranged(
            decrease_permille, 0, 1000, "decrease_permille must be 0..1000")
        cdef int64_t recover = _ranged(
            recover_permille, 0, 1000, "recover_permille must be 0..1000")
        self._min_rate = _ranged(min_rate, 0, _MAX_RATE, "min_rate out of range")
        self._decrease = decrease
        self._recover = recover
        self._buckets.clear()

    def __len__(self):
        return self._buckets.size()

    def __contains__(self, key):
        return self._bucket(key) != NULL

    cdef Bucket* _bucket(self, object key) except? NULL:
        cdef int64_t k
        if not _as_key(key, &k):
            return NULL
        cdef size_t slot = self._buckets.find(k)
        if slot == JOB_MAP_NONE:
            return NULL
        return self._buckets.at(slot)

    def configure(self, key, rate, burst, now):
        """Create or reconfigure a bucket; a new one starts full."""
        cdef int64_t k = _ranged(key, 0, INT64_MAX, "key must be a non-negative int64")
        cdef int64_t t = _ranged(now, 0, INT64_MAX, "now must be a non-negative int64")
        cdef int64_t r = _ranged(rate, 0, _MAX_RATE, "rate must be 0..1e12 milli-tokens per second")
        cdef int64_t b = _ranged(burst, 1, _MAX_BURST, "burst must be 1..1e9 tokens")
        cdef size_t slot = self._buckets.find(k)
        cdef Bucket* bucket
        if slot == JOB_MAP_NONE:
            bucket = self._buckets.insert(k)
            bucket.level = b * TB_MICRO
            bucket.last = t
            bucket.paused_until = 0
            bucket.penalties = 0
        else:
            bucket = self._buckets.at(slot)
            _refill(bucket, t)
            bucket.level = min(bucket.level, b * TB_MICRO)
        bucket.configured = r
        bucket.rate = r
        bucket.burst = b

    def remove(self, key):
        cdef int64_t k
        if not _as_key(key, &k):
            return False
        cdef size_t slot = self._buckets.find(k)
        if slot == JOB_MAP_NONE:
            return False
        self._buckets.erase_at(slot)
        return True

    cdef Bucket* _bucket_now(self, object key, object now, int64_t* t) except? NULL:
        """The bucket of ``key`` with ``now`` read into ``t``; NULL for an unknown key,
        whose ``now`` the twin never reads either. Reading a ``now`` that is not a
        plain int runs its ``__index__``, which may add or remove buckets and so move
        every one of them: the bucket is then looked up again."""
        cdef Bucket* bucket = self._bucket(key)
        if bucket == NULL:
            return NULL
        t[0] = now
        return bucket if PyLong_CheckExact(now) else self._bucket(key)

    def state(self, key, now):
        """(configured rate, current rate, burst, whole tokens, paused until, penalties)."""
        cdef int64_t t
        cdef Bucket* bucket = self._bucket_now(key, now, &t)
        if bucket == NULL:
            return None
        _refill(bucket, t)
        return (
            bucket.configured,
            bucket.rate,
            bucket.burst,
            bucket.level // TB_MICRO,
            bucket.paused_until,
            bucket.penalties,
        )

    def take(self, key, n, now):
        """Take up to ``n`` tokens: (granted, ms until the next token; 0 if all granted, -1 never)."""
        cdef int64_t count = _count(n, "n must be >= 0")
        cdef int64_t t
        cdef Bucket* bucket = self._bucket_now(key, now, &t)
        if bucket == NULL:
            return n, 0
        cdef int64_t wait
        cdef int64_t granted = _take(bucket, count, t, &wait)
        if granted < 0:
            return 0, bucket.paused_until - t
        return granted, wait

    def take_many(self, keys, ns, now):
        """Batch ``take``: returns [granted0, wait0, granted1, wait1, ...]."""
        cdef list key_list = _as_list(keys)
        cdef list n_list = _as_list(ns)
        cdef Py_ssize_t size = len(key_list)
        cdef Py_ssize_t i
        cdef vector[int64_t] counts
        if size != len(n_list):
            raise ValueError("batch columns must have the same length")
        counts.reserve(size)
        for i in range(size):
            counts.push_back(_count(n_list[i], "n must be >= 0"))
        cdef list out = []
        cdef Bucket* bucket
        cdef int64_t t = 0
        cdef bint have_now = False
        cdef int64_t granted, wait
        for i in range(size):
            bucket = self._bucket(key_list[i])
            if bucket == NULL:
                # an unknown key grants everything: the caller's own n, even past int64
                out.append(n_list[i] if counts[i] == INT64_MAX else counts[i])
                out.append(0)
                continue
            if not have_now:
                # the twin never looks at now when every key is unknown
                bucket = self._bucket_now(key_list[i], now, &t)
                have_now = True
                if bucket == NULL:  # removed by the reading of now
                    out.append(n_list[i] if counts[i] == INT64_MAX else counts[i])
                    out.append(0)
                    continue
            granted = _take(bucket, counts[i], t, &wait)
            if granted < 0:
                out.append(0)
                out.append(bucket.paused_until - t)
            else:
                out.append(granted)
                out.append(wait)
        return out

    def refund(self, key, n, now):
        """Give back tokens that were taken but not used."""
        cdef int64_t count = _count(n, "n must be >= 0")
        cdef int64_t t
        cdef Bucket* bucket = self._bucket_now(key, now, &t)
        if bucket == NULL:
            return
        _refill(bucket, t)
        bucket.level = _capped(bucket.level, <int128>count * TB_MICRO, bucket.burst)

    def restore(self, key, rate, paused_until, penalties):
        """Put back a bucket's adaptive state (see the twin); False for an unknown key."""
        cdef int64_t r = _ranged(rate, 0, _MAX_RATE, "rate must be 0..1e12 milli-tokens per second")
        cdef int64_t until = _ranged(
            paused_until, 0, INT64_MAX, "paused_until must be a non-negative int64"
        )
        cdef int64_t count = _ranged(
            penalties, 0, INT64_MAX, "penalties must be a non-negative int64"
        )
        cdef Bucket* bucket = self._bucket(key)
        if bucket == NULL:
            return False
        bucket.rate = min(r, bucket.configured)
        bucket.paused_until = until
        bucket.penalties = count
        return True

    def penalise(self, key, now, retry_after=0):
        """Multiplicative decrease after an upstream 429; False for an unknown key."""
        # no saturating here: the deadline is visible in state()
        cdef int64_t pause = _nonneg(retry_after, "retry_after must be >= 0")
        cdef int64_t t
        cdef Bucket* bucket = self._bucket_now(key, now, &t)
        if bucket == NULL:
            return False
        _refill(bucket, t)
        bucket.rate = max(self._min_rate, bucket.rate * self._decrease // 1000)
        bucket.paused_until = max(bucket.paused_until, <int128>t + pause)
        bucket.penalties += 1
        return True

    def reward(self, key, n, now):
        """Additive recovery after ``n`` successes; False for an unknown key."""
        cdef int64_t count = _count(n, "n must be >= 0")
        cdef int64_t t
        cdef Bucket* bucket = self._bucket_now(key, now, &t)
        if bucket == NULL:
            return False
        _refill(bucket, t)
        cdef int64_t step = max(1, bucket.configured * self._recover // 1000)
        bucket.rate = <int64_t>min(<int128>bucket.configured, bucket.rate + <int128>count * step)
        return True

