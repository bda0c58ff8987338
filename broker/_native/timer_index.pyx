# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Timer index: the compiled twin of ``timer_index_py.py``.

The twin is the specification (see its docstring); this module has the same
API and returns the same results. Timers live in an ``unordered_map`` and the
due index is a ``vector`` kept as a min-heap of (due, seq, job) with lazy
deletion, compacted under the twin's rule. seq is unique per add, so which
stale entries the heap holds never changes what comes out.

Arguments are ints. A job only looked up (``in``, ``due_of``, ``remove``)
behaves like a key of the twin's dict: an int outside int64, or a non-int not
equal to any int, matches nothing. ``now`` and ``limit`` outside int64 act as
the nearest int64, which gives the twin's comparisons.
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cython.operator cimport dereference as deref
from cython.operator cimport preincrement as inc
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t
from libcpp.algorithm cimport make_heap, pop_heap, push_heap
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector


cdef LaterDue _later


from ._keys cimport checked_int64 as _checked, clamped_int64 as _clamped, dict_key as _key


cdef class TimerIndex:
    """job -> due time, popped in due order."""

    def __init__(self):
        self._due.clear()
        self._heap.clear()
        self._seq = 0

    def __len__(self):
        return self._due.size()

    def __contains__(self, job):
        cdef int64_t j
        return _key(job, &j) and self._due.count(j) != 0

    def due_of(self, job):
        """The job's due time, -1 when it is not in the index."""
        cdef int64_t j
        if not _key(job, &j):
            return -1
        cdef unordered_map[int64_t, Timer].iterator it = self._due.find(j)
        return -1 if it == self._due.end() else deref(it).second.due

    def next_due(self):
        """The earliest due time, -1 when empty."""
        self._drop_stale_head()
        return self._heap.front().due if not self._heap.empty() else -1

    def add(self, job, due):
        cdef int64_t j = _checked(job, "job")
        cdef int64_t d = _checked(due, "due")
        self._add(j, d)

    @cython.boundscheck(True)  # converting a value runs Python code, which could shrink the list
    def add_many(self, jobs, dues):
        cdef Py_ssize_t i, n = len(jobs)
        if n != len(dues):
            raise ValueError("batch columns must have the same length")
        # Whole batch checked before any change, as in the twin.
        cdef vector[int64_t] batch_jobs, batch_dues
        batch_jobs.reserve(n)
        batch_dues.reserve(n)
        for i in range(n):
            batch_jobs.push_back(_checked(jobs[i], "job"))
            batch_dues.push_back(_checked(dues[i], "due"))
        for i in range(n):
            self._add(batch_jobs[i], batch_dues[i])

    def remove(self, job):
        cdef int64_t j
        if not _key(job, &j) or self._due.erase(j) == 0:
            return False
        self._maybe_compact()
        return True

    def pop_due(self, now, limit=-1):
        """Remove and return the jobs due at or before ``now``, earliest first."""
        cdef int64_t t = _clamped(now)
        cdef int64_t lim = _clamped(limit)
        cdef int64_t popped = 0
        cdef DueEntry top
        cdef unordered_map[int64_t, Timer].iterator it
        cdef list out = []
        while not self._heap.empty() and (lim < 0 or popped < lim):
            top = self._heap.front()
            it = self._due.find(top.job)
            if it == self._due.end() or deref(it).second.seq != top.seq:
                pop_heap(self._heap.begin(), self._heap.end(), _later)
                self._heap.pop_back()
                continue
            if top.due > t:
                break
            pop_heap(self._heap.begin(), self._heap.end(), _later)
            self._heap.pop_back()
            self._due.erase(it)
            out.append(top.job)
            popped += 1
        return out

    # -- internals --------------------------------------------------------
    cdef int _add(self, int64_t job, int64_t due) except -1:
        self._seq += 1
        # The heap entry first: should the map insert fail, it is merely stale.
        self._heap.push_back(DueEntry(due, self._seq, job))
        push_heap(self._heap.begin(), self._heap.end(), _later)
        self._due[job] = Timer(due, self._seq)
        self._maybe_compact()
        return 0

    cdef void _drop_stale_head(self) noexcept:
        cdef unordered_map[int64_t, Timer].iterator it
        while not self._heap.empty():
            it = self._due.find(self._heap.front().job)
            if it != self._due.end() and deref(it).second.seq == self._heap.front().seq:
                return
            pop_heap(self._heap.begin(), self._heap.end(), _later)
            self._heap.pop_back()

    cdef int _maybe_compact(self) except -1:
        if self._heap.size() <= 64 or self._heap.size() <= 2 * self._due.size():
            return 0
        # A fresh vector, as the twin builds a fresh list, so the memory of the
        # stale entries goes back instead of staying as spare capacity.
        cdef vector[DueEntry] heap
        heap.reserve(self._due.size())
        cdef unordered_map[int64_t, Timer].iterator it = self._due.begin()
        while it != self._due.end():
            heap.push_back(DueEntry(deref(it).second.due, deref(it).second.seq, deref(it).first))
            inc(it)
        make_heap(heap.begin(), heap.end(), _later)
        self._heap.swap(heap)
        return 0
