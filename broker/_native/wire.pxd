from libc.stdint cimport int64_t


cdef class Wire:
    cdef dict _names  # name -> its JSON string
    cdef dict _seconds  # backoff in seconds -> its JSON number
    cdef int64_t _second  # the second _prefix spells (-1: none yet)
    cdef char _prefix[32]  # "2026-11-27T10:00:00."
    cdef int _prefix_len

    cdef int _rfc3339(self, char *buf, int64_t ms) except -1
