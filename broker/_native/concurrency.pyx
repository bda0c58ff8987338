# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Concurrency counters: the compiled twin of ``concurrency_py.py``, which is its specification.

One ``unordered_map`` from key to a (in flight, limit) struct. Counts are
int64: where the twin would hold more than int64 max in flight for a key (only
possible without a limit), the kernel raises OverflowError and changes nothing.
Keys that are stored must be ints; lookups follow dict semantics (1.0 finds 1).
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cython.operator cimport dereference as deref
from libc.stdint cimport INT64_MAX, int64_t
from libcpp.vector cimport vector

UNLIMITED = CC_UNLIMITED

# _grant's n for a count past int64 max, and its answer when the count would
# overflow
cdef enum:
    _HUGE = -1
    _OVERFLOW = -1


from ._keys cimport dict_key as _as_key


cdef inline int64_t _key_arg(object key) except? -1:
    """A key to store: a non-negative int64, else ValueError like the twin."""
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(key, &overflow)
    if overflow or value < 0:
        raise ValueError("key must be a non-negative int64")
    return value


cdef inline int64_t _count_arg(object n) except? -2:
    """A count >= 0 (else ValueError), or _HUGE past int64 max."""
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(n, &overflow)
    if overflow < 0 or (not overflow and value < 0):
        raise ValueError("n must be >= 0")
    return _HUGE if overflow else value


cdef inline list _as_list(object seq):
    # batches are lists in practice; indexing a typed list skips the type checks
    return seq if type(seq) is list else list(seq)


cdef object _overflow(object key):
    return OverflowError(f"in-flight count of key {key} would pass int64")


@cython.auto_pickle(False)
cdef class ConcurrencyCounters:
    """key -> (in flight, limit)."""

    def __init__(self):
        self._counters.clear()

    cdef Counter* _counter(self, object key) except? NULL:
        cdef int64_t k
        if not _as_key(key, &k):
            return NULL
        it = self._counters.find(k)
        if it == self._counters.end():
            return NULL
        return &deref(it).second

    def limit(self, key):
        cdef Counter* counter = self._counter(key)
        return CC_UNLIMITED if counter == NULL else counter.limit

    def inflight(self, key):
        cdef Counter* counter = self._counter(key)
        return 0 if counter == NULL else counter.inflight

    def available(self, key):
        """Slots left under the limit, -1 when unlimited."""
        cdef Counter* counter = self._counter(key)
        if counter == NULL or counter.limit == CC_UNLIMITED:
            return CC_UNLIMITED
        return max(0, counter.limit - counter.inflight)

    def set_limit(self, key, limit):
        """Set a limit (>= 0), or remove it with -1."""
        cdef int64_t k = _key_arg(key)
        cdef int overflow = 0
        cdef long long value = PyLong_AsLongLongAndOverflow(limit, &overflow)
        if overflow or value < CC_UNLIMITED or value > 0x7FFF_FFFF:
            raise ValueError("limit must be -1 (unlimited) or 0..2**31-1")
        if value != CC_UNLIMITED:
            # a new entry is value-initialised: nothing in flight
            self._counters[k].limit = value
            return
        it = self._counters.find(k)
        if it != self._counters.end():
            if deref(it).second.inflight:
                deref(it).second.limit = CC_UNLIMITED
            else:
                self._counters.erase(it)

    cdef int64_t _grant(self, int64_t key, int64_t n) noexcept:
        """Grant up to n (_HUGE: more than int64) to key; _OVERFLOW changes nothing."""
        it = self._counters.find(key)
        cdef Counter* counter = NULL
        cdef int64_t held = 0
        cdef int64_t limit = CC_UNLIMITED
        cdef int64_t granted
        if it != self._counters.end():
            counter = &deref(it).second
            held = counter.inflight
            limit = counter.limit
        if limit == CC_UNLIMITED:
            if n == _HUGE or n > INT64_MAX - held:
                return _OVERFLOW
            granted = n
        else:
            # limit <= 2**31-1 and held >= 0: limit - held cannot overflow
            granted = max(0, min(INT64_MAX if n == _HUGE else n, limit - held))
        if granted:
            if counter == NULL:
                counter = &self._counters[key]
                counter.limit = CC_UNLIMITED
            counter.inflight = held + granted
        return granted

    cdef void _revoke(self, int64_t key, int64_t n) noexcept:
        """Take back n in flight (n <= in flight), dropping an entry left empty."""
        it = self._counters.find(key)
        cdef Counter* counter = &deref(it).second
        counter.inflight -= n
        if counter.inflight == 0 and counter.limit == CC_UNLIMITED:
            self._counters.erase(it)

    def acquire(self, key, n):
        cdef int64_t k = _key_arg(key)
        cdef int64_t granted = self._grant(k, _count_arg(n))
        if granted == _OVERFLOW:
            raise _overflow(key)
        return granted

    def acquire_many(self, keys, ns):
        cdef list key_list = _as_list(keys)
        cdef list n_list = _as_list(ns)
        cdef Py_ssize_t size = len(key_list)
        cdef Py_ssize_t i, j
        cdef vector[int64_t] ks
        cdef vector[int64_t] counts
        cdef int64_t granted
        if size != len(n_list):
            raise ValueError("batch columns must have the same length")
        ks.reserve(size)
        counts.reserve(size)
        for i in range(size):
            ks.push_back(_key_arg(key_list[i]))
            counts.push_back(_count_arg(n_list[i]))
        for i in range(size):
            granted = self._grant(ks[i], counts[i])
            if granted == _OVERFLOW:
                # undo the batch so far: all or nothing
                for j in range(i - 1, -1, -1):
                    if counts[j]:
                        self._revoke(ks[j], counts[j])
                raise _overflow(key_list[i])
            counts[i] = granted
        return counts

    def release(self, key, n):
        self.release_many((key,), (n,))

    def release_many(self, keys, ns):
        """Release slots; refuses the whole batch if any key would go below zero."""
        cdef list key_list = _as_list(keys)
        cdef list n_list = _as_list(ns)
        cdef Py_ssize_t size = len(key_list)
        cdef Py_ssize_t i, j
        cdef int64_t count
        cdef Counter* counter
        cdef vector[int64_t] ks
        cdef vector[int64_t] counts
        cdef vector[int64_t] emptied
        if size != len(n_list):
            raise ValueError("batch columns must have the same length")
        # Convert everything first (the twin raises for n < 0, or TypeError for
        # an unhashable key, before it changes anything). A key that is no
        # int64 holds nothing, so any n > 0 for it is refused, like n > int64.
        ks.resize(size)
        counts.reserve(size)
        for i in range(size):
            counts.push_back(_count_arg(n_list[i]))
            if not _as_key(key_list[i], &ks[i]):
                counts[i] = _HUGE if counts[i] else 0
        # Release in place, element by element: a key's running count goes
        # below zero exactly when its batch total exceeds what it held.
        for i in range(size):
            count = counts[i]
            if count == 0:
                continue
            it = self._counters.find(ks[i])
            if count != _HUGE and it != self._counters.end():
                counter = &deref(it).second
                if count <= counter.inflight:
                    counter.inflight -= count
                    if counter.inflight == 0 and counter.limit == CC_UNLIMITED:
                        emptied.push_back(ks[i])
                    continue
            # refused: all or nothing, so give back what the batch took so far
            for j in range(i):
                if counts[j]:
                    counter = &deref(self._counters.find(ks[j])).second
                    counter.inflight += counts[j]
            raise ValueError(_refusal(self, key_list, n_list))
        for i in range(<Py_ssize_t>emptied.size()):
            self._counters.erase(emptied[i])


cdef str _refusal(ConcurrencyCounters counters, object keys, object ns):
    """The twin's message: the first key, in dict order, whose total exceeds its count."""
    totals = {}
    for key, n in zip(keys, ns, strict=True):
        totals[key] = totals.get(key, 0) + n
    return next(
        f"release of {n} exceeds in-flight count of key {key}"
        for key, n in totals.items()
        if n > counters.inflight(key)
    )
