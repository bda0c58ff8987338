# distutils: language = c++
# cython: language_level=3
"""A live job's record: the compiled twin of ``job_record_py.py``.

The same fields, as C integers instead of boxed ints, and no garbage-collector
header: a job refers only to its payload bytes, its meta tuple and a status
string, none of which can refer back to it, so it can never be part of a
reference cycle (``cython.no_gc``). A million queued jobs are then 96 bytes
each, and the cycle collector neither tracks nor walks them. Integer fields
raise OverflowError outside their C range, which the engine's limits keep
them well inside (priority 0..9, attempts <= 100, leases <= 1 h).
"""

cimport cython
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t


@cython.no_gc
@cython.final
@cython.freelist(256)
@cython.auto_pickle(False)
cdef class Job:
    def __init__(
        self,
        int64_t jid,
        int32_t tenant,
        int32_t jtype,
        int8_t priority,
        int16_t max_attempts,
        int32_t lease_ms,
        int64_t created,
        int64_t not_before,
        object payload,
        object meta,
        int8_t state,
    ):
        self.jid = jid
        self.tenant = tenant
        self.jtype = jtype
        self.priority = priority
        self.max_attempts = max_attempts
        self.lease_ms = lease_ms
        self.created = created
        self.not_before = not_before
        self.payload = payload
        self.meta = meta
        self.state = state
        self.attempt = 0
        self.last_token = 0
        self.last_status = ""

    def __repr__(self):
        return f"Job(jid={self.jid}, state={self.state}, attempt={self.attempt})"
