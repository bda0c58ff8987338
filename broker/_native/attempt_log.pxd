from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t
from libcpp.vector cimport vector

from .job_record cimport Job
from .lease_table cimport JobMap


# one attempt (token != 0) or one transition of a job in this flush
cdef struct Entry:
    int64_t at
    int64_t token
    int64_t leased_at  # 0 unless the entry opened the attempt
    int64_t deadline
    int64_t finished  # 0 while open
    int64_t due
    int32_t state
    int32_t attempt
    int32_t next  # the job's next entry, -1 at its last
    # owned references, NULL for None
    PyObject* worker
    PyObject* status
    PyObject* error
    PyObject* output
    PyObject* reason


# a job touched since the last cut, in the order first touched
cdef struct Touched:
    int64_t jid
    PyObject* job  # owned reference
    int32_t first  # its entries, chained by Entry.next
    int32_t last


cdef class AttemptLog:
    cdef object _row_type
    cdef int _leased
    cdef int _pending
    cdef bint _busy
    cdef list _boxed  # see _time
    cdef int64_t _unboxed[4]
    cdef vector[Touched] _jobs
    cdef vector[Entry] _entries
    cdef JobMap[int32_t] _index  # job number -> its position in _jobs

    cdef int _enter(self, Py_ssize_t more) except -1
    cdef int32_t _touch(self, Job job) except -1
    cdef void _append(self, int32_t pos, Entry e) except *
    cdef int32_t _latest(self, int64_t jid)
    cdef int32_t _attempt(self, Job job, int64_t token, int64_t at) except -1
    cdef bint _fresh_claims(self, int32_t k, int64_t since)
    cdef void _keep(self, vector[char]& held) except *
    cdef object _current(self, int64_t jid, int32_t k, Job job, object live)
    cdef object _row_after(self, int64_t jid, Entry* e)
    cdef object _time(self, int field, int64_t value)
    cdef object _row(self, int64_t jid, Entry* e, object token, int state, int attempt,
                     object due, object lease_token, object lease_worker,
                     object lease_deadline, object last_token, object last_status)
