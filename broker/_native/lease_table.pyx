# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Lease table: the compiled twin of ``lease_table_py.py``.

The twin is the specification (see its docstring); this module has the same
API and returns the same results. Leases live in a ``JobMap`` (open
addressing, see lease_table.pxd) and the deadline index is a ``vector`` kept
as a min-heap of (deadline, token, job) with lazy deletion, compacted under
the twin's rule. Which stale entries the heap holds is internal: a lease is
returned at most once, when its live entry reaches the top, so results never
depend on it.

Arguments are ints. Lookup-only arguments (jobs and tokens to look up, a job
to revoke) behave like the twin's dict lookups: an int outside int64, or a
non-int not equal to any int, matches nothing. ``now`` and ``limit`` outside
int64 act as the nearest int64, which gives the twin's comparisons.
"""

cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check, PyLong_CheckExact
from cpython.ref cimport Py_INCREF
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t
from libcpp.algorithm cimport make_heap, pop_heap, push_heap
from libcpp.vector cimport vector


# Batch lookups start loading the slot this many jobs ahead, so that cache
# misses overlap instead of stalling one after another.
cdef enum:
    PREFETCH = 8
    SCRATCH_KEEP = 65536  # a scratch vector kept between calls holds at most this many


cdef LaterDeadline _later


from ._keys cimport checked_int64 as _checked, clamped_int64 as _clamped, dict_key as _key


@cython.boundscheck(True)  # converting a value runs Python code, which could shrink the list
cdef int _keys(object values, vector[int64_t]& out) except -1:
    """``values`` as lookup keys; -1 for one that matches nothing (no job or token is -1)."""
    cdef Py_ssize_t i, n = len(values)
    cdef int64_t v
    cdef int overflow
    out.reserve(n)
    for i in range(n):
        value = values[i]
        if PyLong_CheckExact(value):  # the common case, without _key's call
            v = PyLong_AsLongLongAndOverflow(value, &overflow)
            out.push_back(-1 if overflow else v)
        else:
            out.push_back(v if _key(value, &v) else -1)
    return 0


cdef inline void _set_bool(list out, Py_ssize_t i, bint flag) noexcept:
    """Fill slot ``i`` of a list fresh from PyList_New."""
    cdef object value = True if flag else False
    Py_INCREF(value)  # PyList_SET_ITEM steals a reference
    PyList_SET_ITEM(out, i, value)


cdef int _same_length(object a, object b) except -1:
    if len(a) != len(b):
        raise ValueError("batch columns must have the same length")
    return 0


@cython.boundscheck(True)
def _rebuild(next_token, leases):
    """Unpickle: a table holding ``leases`` ([job, token, worker, deadline, ...])."""
    cdef LeaseTable table = LeaseTable()
    cdef Py_ssize_t i
    for i in range(0, len(leases), 4):
        table.restore(leases[i], leases[i + 1], leases[i + 2], leases[i + 3])
    table._next = next_token
    return table


cdef class LeaseTable:
    """job -> (token, worker, deadline) with a deadline index."""

    def __init__(self, first_token=1):
        cdef int overflow = 0
        cdef long long first = PyLong_AsLongLongAndOverflow(first_token, &overflow)
        if overflow or first < 1:
            raise ValueError("first_token must be a positive int64")
        self._next = <uint64_t>first
        self._leases.clear()
        self._heap.clear()

    def __reduce__(self):
        cdef list leases = []
        cdef Lease* lease
        cdef size_t slot
        for slot in range(self._leases.capacity()):
            if self._leases.job_at(slot) >= 0:
                lease = self._leases.at(slot)
                leases += [self._leases.job_at(slot), lease.token, lease.worker, lease.deadline]
        return _rebuild, (self._next, leases)

    # -- inspection -------------------------------------------------------
    def __len__(self):
        return self._leases.size()

    def __contains__(self, job):
        cdef int64_t j
        return self._find(job, &j) != NULL

    @property
    def next_token(self):
        return self._next

    def token_of(self, job):
        """The job's current token, 0 when it holds no lease."""
        cdef int64_t j
        cdef Lease* lease = self._find(job, &j)
        return 0 if lease == NULL else lease.token

    def worker_of(self, job):
        """The worker holding the job's lease, -1 when none."""
        cdef int64_t j
        cdef Lease* lease = self._find(job, &j)
        return -1 if lease == NULL else lease.worker

    def deadline_of(self, job):
        """The job's lease deadline, -1 when it holds no lease."""
        cdef int64_t j
        cdef Lease* lease = self._find(job, &j)
        return -1 if lease == NULL else lease.deadline

    def next_deadline(self):
        """The earliest live deadline, -1 when the table is empty."""
        self._drop_stale_head()
        return self._heap.front().deadline if not self._heap.empty() else -1

    def validate(self, job, token):
        cdef int64_t j, tok
        cdef Lease* lease = self._find(job, &j)
        return lease != NULL and _key(token, &tok) and lease.token == tok

    def validate_many(self, jobs, tokens):
        _same_length(jobs, tokens)
        cdef Py_ssize_t i, n = len(jobs)
        cdef vector[int64_t] keys, toks
        _keys(jobs, keys)
        self._prefetch_head(keys)  # loads while the tokens are converted
        _keys(tokens, toks)
        cdef size_t slot
        cdef list out = PyList_New(n)
        for i in range(n):
            if i + PREFETCH < n:
                self._leases.prefetch(keys[i + PREFETCH])
            slot = self._leases.find(keys[i])
            _set_bool(out, i, slot != JOB_MAP_NONE and self._leases.at(slot).token == toks[i])
        return out

    # -- writes -----------------------------------------------------------
    @cython.boundscheck(True)  # converting a job runs Python code, which could shrink the list
    def grant_many(self, jobs, worker, deadline):
        """Lease every job to ``worker`` until ``deadline``; returns fresh tokens.

        Refuses the whole batch (ValueError) if a job is already leased or
        appears twice, or if a token would pass the int64 range.
        """
        cdef int64_t w = _checked(worker, "worker")
        cdef int64_t d = _checked(deadline, "deadline")
        cdef Py_ssize_t i, n = len(jobs)
        cdef int64_t job
        cdef Lease* lease
        cdef size_t slot
        # Reading a job may run Python code (``__getitem__``, ``__index__``) that
        # calls in again: the kept scratch is taken for this call (a nested call
        # makes its own), and the tokens are reserved before the first read (a
        # nested grant takes the ones after them, never the same).
        cdef vector[int64_t] batch
        batch.swap(self._granted)
        batch.clear()
        batch.reserve(n)
        self._reserve_heap(n)
        cdef uint64_t start = self._next
        self._next += <uint64_t>n
        # Leases go in as the batch is checked (a job seen twice is then
        # already leased) and come out again if anything in it is refused.
        try:
            for i in range(n):
                job = _checked(jobs[i], "job")
                if self._leases.find(job) != JOB_MAP_NONE:
                    raise ValueError(f"job {job} is already leased")
                lease = self._leases.insert(job)
                lease.token = <int64_t>(start + <uint64_t>i)
                lease.worker = w
                lease.deadline = d
                batch.push_back(job)
            if start - 1 + <uint64_t>n > <uint64_t>INT64_MAX:
                raise ValueError("token counter exhausted")
            for i in range(n):
                self._push(d, <int64_t>start + i, batch[i])
            return [<int64_t>start + i for i in range(n)]
        except:
            for i in range(<Py_ssize_t>batch.size()):
                slot = self._leases.find(batch[i])
                if slot != JOB_MAP_NONE:  # a nested call may have released it already
                    self._leases.erase_at(slot)
            if self._next == start + <uint64_t>n:
                self._next = start  # a refused batch uses no token (unless a nested grant did)
            raise
        finally:
            batch.clear()
            if batch.capacity() <= SCRATCH_KEEP:  # one huge batch does not pin its memory
                self._granted.swap(batch)

    def restore(self, job, token, worker, deadline):
        """Re-install a lease loaded from the store (recovery)."""
        cdef int64_t j = _checked(job, "job")
        cdef int64_t w = _checked(worker, "worker")
        cdef int64_t d = _checked(deadline, "deadline")
        cdef int overflow = 0
        cdef long long tok = PyLong_AsLongLongAndOverflow(token, &overflow)
        if overflow or tok < 1:
            raise ValueError("token must be a positive int64")
        if self._leases.find(j) != JOB_MAP_NONE:
            raise ValueError(f"job {j} is already leased")
        self._push(d, tok, j)  # first: if the insert fails, the entry is merely stale
        self._leases.insert(j)[0] = Lease(tok, w, d)
        if <uint64_t>tok >= self._next:
            self._next = <uint64_t>tok + 1

    def extend_many(self, jobs, tokens, deadline):
        """Move each valid lease's deadline to ``deadline``; False for a stale token."""
        _same_length(jobs, tokens)
        cdef int64_t d = _checked(deadline, "deadline")
        cdef Py_ssize_t i, n = len(jobs)
        cdef vector[int64_t] keys, toks
        _keys(jobs, keys)
        self._prefetch_head(keys)  # loads while the tokens are converted
        _keys(tokens, toks)
        cdef size_t slot
        cdef Lease* lease
        cdef list out = PyList_New(n)
        for i in range(n):
            if i + PREFETCH < n:
                self._leases.prefetch(keys[i + PREFETCH])
            slot = self._leases.find(keys[i])
            if slot == JOB_MAP_NONE or self._leases.at(slot).token != toks[i]:
                _set_bool(out, i, False)
                continue
            _set_bool(out, i, True)
            lease = self._leases.at(slot)
            if lease.deadline != d:
                self._push(d, lease.token, keys[i])  # first, so a failed push changes nothing
                lease.deadline = d
                self._maybe_compact()
        return out

    def release_many(self, jobs, tokens):
        """End each lease whose token matches; False (and no change) otherwise."""
        _same_length(jobs, tokens)
        cdef Py_ssize_t i, n = len(jobs)
        cdef vector[int64_t] keys, toks
        _keys(jobs, keys)
        self._prefetch_head(keys)  # loads while the tokens are converted
        _keys(tokens, toks)
        cdef size_t slot
        cdef list out = PyList_New(n)
        for i in range(n):
            if i + PREFETCH < n:
                self._leases.prefetch(keys[i + PREFETCH])
            slot = self._leases.find(keys[i])
            if slot != JOB_MAP_NONE and self._leases.at(slot).token == toks[i]:
                self._leases.erase_at(slot)
                _set_bool(out, i, True)
            else:
                _set_bool(out, i, False)
        self._maybe_compact()
        return out

    def revoke(self, job):
        """End a job's lease whatever its token (operator cancel); returns the token or 0."""
        cdef int64_t j
        if not _key(job, &j):
            return 0
        cdef size_t slot = self._leases.find(j)
        if slot == JOB_MAP_NONE:
            return 0
        cdef int64_t token = self._leases.at(slot).token
        self._leases.erase_at(slot)
        self._maybe_compact()
        return token

    def pop_expired(self, now, limit=-1):
        """Remove leases with deadline <= now; returns [job, token, job, token, ...]."""
        cdef int64_t t = _clamped(now)
        cdef int64_t lim = _clamped(limit)
        cdef int64_t popped = 0
        cdef DeadlineEntry top
        cdef size_t slot
        cdef Lease* lease
        cdef list out = []
        while not self._heap.empty() and (lim < 0 or popped < lim):
            top = self._heap.front()
            slot = self._leases.find(top.job)
            if slot != JOB_MAP_NONE:
                lease = self._leases.at(slot)
                if lease.token == top.token and lease.deadline == top.deadline:
                    if top.deadline > t:
                        break
                    self._leases.erase_at(slot)
                    out.append(top.job)
                    out.append(top.token)
                    popped += 1
            pop_heap(self._heap.begin(), self._heap.end(), _later)
            self._heap.pop_back()
        return out

    # -- internals --------------------------------------------------------
    cdef Lease* _find(self, object job, int64_t* key) except? NULL:
        """The lease of ``job`` (its int64 value goes to ``key``), NULL when none."""
        if not _key(job, key):
            return NULL
        cdef size_t slot = self._leases.find(key[0])
        if slot == JOB_MAP_NONE:
            return NULL
        return self._leases.at(slot)

    cdef void _prefetch_head(self, const vector[int64_t]& keys) noexcept:
        cdef size_t i
        for i in range(min(keys.size(), <size_t>PREFETCH)):
            self._leases.prefetch(keys[i])

    cdef int _reserve_heap(self, size_t more) except -1:
        """Room for ``more`` pushes that cannot fail; grows geometrically."""
        cdef size_t need = self._heap.size() + more
        if need > self._heap.capacity():
            self._heap.reserve(max(need, 2 * self._heap.capacity()))
        return 0

    cdef int _push(self, int64_t deadline, int64_t token, int64_t job) except -1:
        self._heap.push_back(DeadlineEntry(deadline, token, job))
        push_heap(self._heap.begin(), self._heap.end(), _later)
        return 0

    cdef void _drop_stale_head(self) noexcept:
        cdef DeadlineEntry top
        cdef size_t slot
        while not self._heap.empty():
            top = self._heap.front()
            slot = self._leases.find(top.job)
            if (slot != JOB_MAP_NONE and self._leases.at(slot).token == top.token
                    and self._leases.at(slot).deadline == top.deadline):
                return
            pop_heap(self._heap.begin(), self._heap.end(), _later)
            self._heap.pop_back()

    cdef int _maybe_compact(self) except -1:
        if self._heap.size() <= 64 or self._heap.size() <= 2 * self._leases.size():
            return 0
        # A fresh vector, as the twin builds a fresh list, so the memory of the
        # stale entries goes back instead of staying as spare capacity.
        cdef vector[DeadlineEntry] heap
        heap.reserve(self._leases.size())
        cdef size_t slot
        cdef Lease* lease
        for slot in range(self._leases.capacity()):
            if self._leases.job_at(slot) >= 0:
                lease = self._leases.at(slot)
                heap.push_back(DeadlineEntry(lease.deadline, lease.token,
                                             self._leases.job_at(slot)))
        make_heap(heap.begin(), heap.end(), _later)
        self._heap.swap(heap)
        return 0
