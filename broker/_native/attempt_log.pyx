# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
"""A flush's entries per job, coalesced per attempt: the compiled twin of
``attempt_log_py.py``, which specifies what goes in and which rows come out.

The twin keeps a dict of lists of small objects per touched job; here the
entries are structs in one vector, chained per job, and the jobs are found by
number in the lease table's ``JobMap``. A claim is one struct appended, its
ack a few stores into it, and a cut one pass that builds each row directly as
a tuple of ``row_type``. Strings and bytes are held as owned references.
"""

cimport cython
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.stdint cimport int32_t, int64_t
from libcpp.vector cimport vector

from .job_record cimport Job
from .lease_table cimport JOB_MAP_NONE, JobMap

cdef extern from *:
    """
    // A row of a tuple subclass, items still empty: what ``tuple.__new__(cls, t)``
    // makes, without first making ``t``.
    static PyObject* attempt_log_row(PyObject* type, Py_ssize_t n) {
        PyObject* row = ((PyTypeObject*)type)->tp_alloc((PyTypeObject*)type, n);
    #if PY_VERSION_HEX >= 0x030E0000
        // tuples cache their hash from 3.14 on; -1 is "not computed yet" (the
        // allocator leaves 0, which would pass for a computed hash)
        if (row != NULL) ((PyTupleObject*)row)->ob_hash = -1;
    #endif
        return row;
    }
    """
    object attempt_log_row(object type, Py_ssize_t n)

cdef enum:
    ROW_FIELDS = 19


cdef inline object _obj(PyObject* p):
    return None if p == NULL else <object>p


cdef inline PyObject* _ref(object o):
    """An owned reference for an entry field; None is kept as NULL."""
    if o is None:
        return NULL
    Py_INCREF(o)
    return <PyObject*>o


cdef inline void _put(object row, Py_ssize_t i, object value):
    Py_INCREF(value)  # PyTuple_SET_ITEM steals it
    PyTuple_SET_ITEM(row, i, value)


cdef void _release(Entry* e) noexcept:
    Py_XDECREF(e.worker)
    Py_XDECREF(e.status)
    Py_XDECREF(e.error)
    Py_XDECREF(e.output)
    Py_XDECREF(e.reason)


cdef inline void _check_lengths(Py_ssize_t n, list a, list b) except *:
    if len(a) != n or len(b) != n:
        raise ValueError("columns of different lengths")


@cython.final
@cython.auto_pickle(False)
cdef class AttemptLog:
    def __init__(self, row_type, int leased, int pending):
        if not isinstance(row_type, type) or not issubclass(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass")
        self._row_type = row_type
        self._boxed = [None] * 4
        self._leased = leased
        self._pending = pending

    def __dealloc__(self):
        cdef size_t i
        for i in range(self._entries.size()):
            _release(&self._entries[i])
        for i in range(self._jobs.size()):
            Py_DECREF(<object>self._jobs[i].job)

    def __len__(self):
        return self._jobs.size()

    def oldest(self, int64_t default):
        cdef int64_t low = default
        cdef bint found = False
        cdef size_t i
        cdef int64_t at
        for i in range(self._jobs.size()):
            at = self._entries[self._jobs[i].first].at
            if not found or at < low:
                low = at
                found = True
        return low

    cdef int _enter(self, Py_ssize_t more) except -1:
        """Start a call that adds up to ``more`` jobs and entries."""
        if self._row_type is None:
            raise TypeError("AttemptLog.__init__ was not called")
        # Python code run from inside a call (an argument's __index__, ``live``)
        # must not change the vectors the call is walking
        if self._busy:
            raise RuntimeError("AttemptLog called again from inside a call")
        # room made first: once an entry is taken apart, nothing can fail halfway
        self._jobs.reserve(self._jobs.size() + more)
        self._entries.reserve(self._entries.size() + more)
        self._busy = True
        return 0

    # -- records -----------------------------------------------------------------
    # bounds checked: reading a token may run Python code that shortens a list
    @cython.boundscheck(True)
    def leased(self, int64_t at, str worker, list jobs, list tokens, list deadlines):
        cdef Py_ssize_t i, n = len(jobs)
        cdef Job job
        cdef Entry e
        cdef int32_t pos
        _check_lengths(n, tokens, deadlines)
        self._enter(n)
        try:
            for i in range(n):
                job = <Job?>jobs[i]
                e = _entry(at, self._leased, job.attempt, <int64_t>tokens[i],
                           0 if worker is None else at, <int64_t>deadlines[i])
                pos = self._touch(job)
                e.worker = _ref(worker)
                self._append(pos, e)
        finally:
            self._busy = False

    @cython.boundscheck(True)
    def extended(self, int64_t at, list jobs, list tokens, list deadlines):
        cdef Py_ssize_t i, n = len(jobs)
        cdef Job job
        cdef int64_t deadline
        cdef int32_t k
        _check_lengths(n, tokens, deadlines)
        self._enter(n)
        try:
            for i in range(n):
                job = <Job?>jobs[i]
                deadline = deadlines[i]
                k = self._attempt(job, <int64_t>tokens[i], at)
                self._entries[k].deadline = deadline
        finally:
            self._busy = False

    @cython.boundscheck(True)
    def finished(self, int64_t at, list jobs, list tokens, list statuses, list states,
                 list due, list errors, list outputs):
        cdef Py_ssize_t i, n = len(jobs)
        cdef Job job
        cdef int64_t token, when
        cdef int state
        cdef int32_t k
        cdef Entry* e
        _check_lengths(n, tokens, statuses)
        _check_lengths(n, states, due)
        _check_lengths(n, errors, outputs)
        self._enter(n)
        try:
            for i in range(n):
                job = <Job?>jobs[i]
                token = tokens[i]
                state = states[i]
                when = due[i]
                k = self._latest(job.jid)
                # mostly the attempt's claim is the job's latest entry of this flush
                if k < 0 or self._entries[k].token != token:
                    k = self._attempt(job, token, at)
                e = &self._entries[k]
                e.finished = at
                e.state = state
                e.due = when
                _swap(&e.status, statuses[i])
                _swap(&e.error, errors[i])
                _swap(&e.output, outputs[i])
        finally:
            self._busy = False

    def changed(self, int64_t at, list jobs, int state, str reason):
        cdef Job job
        cdef Entry e
        cdef int32_t pos
        self._enter(len(jobs))
        try:
            for job in jobs:
                e = _entry(at, state, job.attempt, 0, 0, 0)
                pos = self._touch(job)
                e.reason = _ref(reason)
                self._append(pos, e)
        finally:
            self._busy = False

    cdef int32_t _touch(self, Job job) except -1:
        """The position of ``job`` among the touched jobs, added if new (room for it
        was made by ``_enter``; the index, which may grow, is written first)."""
        cdef size_t slot = self._index.find(job.jid)
        if slot != JOB_MAP_NONE:
            return self._index.at(slot)[0]
        if job.jid < 0:
            raise ValueError("a job number must be non-negative")
        cdef int32_t pos = <int32_t>self._jobs.size()
        self._index.insert(job.jid)[0] = pos
        cdef Touched t
        t.jid = job.jid
        t.job = <PyObject*>job
        t.first = -1
        t.last = -1
        self._jobs.push_back(t)
        Py_INCREF(job)
        return pos

    cdef void _append(self, int32_t pos, Entry e) except *:
        cdef int32_t k = <int32_t>self._entries.size()
        self._entries.push_back(e)
        cdef Touched* t = &self._jobs[pos]
        if t.last < 0:
            t.first = k
        else:
            self._entries[t.last].next = k
        t.last = k

    cdef int32_t _latest(self, int64_t jid):
        """The job's latest entry, -1 when it has none."""
        cdef size_t slot = self._index.find(jid)
        if slot == JOB_MAP_NONE:
            return -1
        return self._jobs[self._index.at(slot)[0]].last

    cdef int32_t _attempt(self, Job job, int64_t token, int64_t at) except -1:
        """The entry of this attempt in this flush, made if the flush has none yet."""
        cdef int32_t pos = self._touch(job)
        cdef int32_t k = self._jobs[pos].first, found = -1
        while k >= 0:
            if self._entries[k].token == token:
                found = k
            k = self._entries[k].next
        if found >= 0:
            return found
        self._append(pos, _entry(at, self._leased, job.attempt, token, 0, 0))
        return self._jobs[pos].last

    # -- rows --------------------------------------------------------------------
    def cut(self, live, new, hold_from=None):
        cdef bint hold = hold_from is not None
        cdef int64_t since = hold_from if hold else 0
        cdef bint any_new = hold and bool(new)
        cdef list rows = []
        cdef vector[char] held
        cdef size_t pos, n
        cdef int32_t k
        cdef Touched* t
        self._enter(0)
        try:
            n = self._jobs.size()
            held.resize(n, 0)
            for pos in range(n):
                t = &self._jobs[pos]
                if hold and self._fresh_claims(t.first, since) and not (
                    any_new and t.jid in new
                ):
                    held[pos] = 1
                    continue
                k = t.first
                while self._entries[k].next >= 0:
                    rows.append(self._row_after(t.jid, &self._entries[k]))
                    k = self._entries[k].next
                rows.append(self._current(t.jid, k, <Job>t.job, live))
            # every row is made: now the written jobs go, the held ones move up
            self._keep(held)
        finally:
            self._busy = False
        return rows

    cdef bint _fresh_claims(self, int32_t k, int64_t since):
        """Nothing but open attempts, all leased after ``since``."""
        cdef Entry* e
        while k >= 0:
            e = &self._entries[k]
            if e.finished or not e.leased_at or e.leased_at <= since:
                return False
            k = e.next
        return True

    cdef void _keep(self, vector[char]& held) except *:
        cdef vector[Touched] jobs
        cdef vector[Entry] entries
        cdef Touched t
        cdef int32_t k, last
        cdef size_t pos, slot
        # room made first: once a written job is released nothing may fail
        jobs.reserve(self._jobs.size())
        entries.reserve(self._entries.size())
        for pos in range(self._jobs.size()):
            t = self._jobs[pos]
            slot = self._index.find(t.jid)
            if not held[pos]:
                self._index.erase_at(slot)
                k = t.first
                while k >= 0:
                    _release(&self._entries[k])
                    k = self._entries[k].next
                Py_DECREF(<object>t.job)
                continue
            self._index.at(slot)[0] = <int32_t>jobs.size()
            k = t.first
            last = -1
            t.first = <int32_t>entries.size()
            while k >= 0:
                entries.push_back(self._entries[k])
                if last >= 0:
                    entries[last].next = <int32_t>(entries.size() - 1)
                last = <int32_t>(entries.size() - 1)
                k = self._entries[k].next
            entries[last].next = -1
            t.last = last
            jobs.push_back(t)
        self._jobs.swap(jobs)
        self._entries.swap(entries)

    cdef object _current(self, int64_t jid, int32_t k, Job job, object live):
        """A job's last row: its state as it is now."""
        cdef int state = job.state
        cdef object due = 0, token = 0, worker = None, deadline = 0
        if state == self._leased or state == self._pending:
            due, token, worker, deadline = live(jid, state)
        cdef Entry* e = &self._entries[k]
        cdef object own_token = e.token
        # after an ack the job's last token is this entry's: one int object for both
        last_token = own_token if job.last_token == e.token else job.last_token
        return self._row(jid, e, own_token, state, job.attempt, due, token, worker, deadline,
                         last_token, job.last_status or None)

    cdef object _row_after(self, int64_t jid, Entry* e):
        """The row of an entry that is not the job's last in the flush: the state
        right after it."""
        cdef object token = e.token
        if e.state == self._leased and not e.finished:
            return self._row(jid, e, token, self._leased, e.attempt, 0, token, _obj(e.worker),
                             e.deadline, 0, None)
        if e.finished:
            return self._row(jid, e, token, e.state, e.attempt, e.due, 0, None, 0, token,
                             _obj(e.status))
        return self._row(jid, e, token, e.state, e.attempt, e.due, 0, None, 0, 0, None)

    cdef object _time(self, int field, int64_t value):
        """``value`` boxed, reusing the int object of the last row's same field: the
        rows of one batch mostly share their times (claimed, acked, deadline)."""
        if self._boxed[field] is None or self._unboxed[field] != value:
            self._boxed[field] = value
            self._unboxed[field] = value
        return self._boxed[field]

    cdef object _row(self, int64_t jid, Entry* e, object token, int state, int attempt,
                     object due, object lease_token, object lease_worker,
                     object lease_deadline, object last_token, object last_status):
        row = attempt_log_row(self._row_type, ROW_FIELDS)
        _put(row, 0, jid)
        _put(row, 1, self._time(0, e.at))
        _put(row, 2, state)
        _put(row, 3, attempt)
        _put(row, 4, due)
        _put(row, 5, lease_token)
        _put(row, 6, lease_worker)
        _put(row, 7, lease_deadline)
        _put(row, 8, last_token)
        _put(row, 9, last_status)
        _put(row, 10, token)
        _put(row, 11, _obj(e.worker))
        _put(row, 12, self._time(1, e.leased_at))
        _put(row, 13, self._time(2, e.deadline))
        _put(row, 14, self._time(3, e.finished))
        _put(row, 15, _obj(e.status))
        _put(row, 16, _obj(e.error))
        _put(row, 17, _obj(e.output))
        _put(row, 18, _obj(e.reason))
        return row


cdef inline Entry _entry(int64_t at, int state, int attempt, int64_t token, int64_t leased_at,
                         int64_t deadline) noexcept:
    cdef Entry e
    e.at = at
    e.state = state
    e.attempt = attempt
    e.token = token
    e.leased_at = leased_at
    e.deadline = deadline
    e.finished = 0
    e.due = 0
    e.next = -1
    e.worker = NULL
    e.status = NULL
    e.error = NULL
    e.output = NULL
    e.reason = NULL
    return e


cdef inline void _swap(PyObject** field, object value):
    cdef PyObject* old = field[0]
    field[0] = _ref(value)
    Py_XDECREF(old)
