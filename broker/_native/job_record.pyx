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

    # -- batches: one call per claim or ack instead of a Python loop over its jobs;
    # a record that is not compiled (a twin's) goes through its attributes ----------
    @staticmethod
    def all_in(list jobs, int32_t tenant, int8_t state):
        for job in jobs:
            if type(job) is Job:
                if (<Job>job).tenant != tenant or (<Job>job).state != state:
                    return False
            elif job is None or job.tenant != tenant or job.state != state:
                return False
        return True

    @staticmethod
    def lease_many(list jobs, int8_t state):
        for job in jobs:
            if type(job) is Job:
                if (<Job>job).attempt == 32767:
                    raise OverflowError("value too large to convert to int16_t")
                (<Job>job).state = state
                (<Job>job).attempt += 1
            else:
                job.state = state
                job.attempt += 1

    @staticmethod
    def finish_many(list jobs, list tokens, int8_t state, str status):
        if len(tokens) != len(jobs):
            raise ValueError("jobs and tokens differ in length")
        cdef list described = []
        cdef Py_ssize_t i
        for i in range(len(jobs)):
            job = jobs[i]
            token = tokens[i]
            if type(job) is Job:
                (<Job>job).state = state
                (<Job>job).last_token = token
                (<Job>job).last_status = status
                if (<Job>job).meta is not None:
                    described.append(job)
            else:
                job.state = state
                job.last_token = token
                job.last_status = status
                if job.meta is not None:
                    described.append(job)
        return described
