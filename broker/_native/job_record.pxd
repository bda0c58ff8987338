from libc.stdint cimport int8_t, int16_t, int32_t, int64_t


# the decorators (no garbage-collector header, final, a freelist) are in job_record.pyx
cdef class Job:
    cdef public int64_t jid
    cdef public int64_t created
    cdef public int64_t not_before
    cdef public int64_t last_token
    cdef public int32_t tenant
    cdef public int32_t jtype
    cdef public int32_t lease_ms
    cdef public int16_t attempt
    cdef public int16_t max_attempts
    cdef public int8_t priority
    cdef public int8_t state
    cdef public object payload
    cdef public object meta
    cdef public str last_status

