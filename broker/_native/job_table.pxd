from cpython.ref cimport PyObject

from .lease_table cimport JobMap

ctypedef PyObject* Record


cdef class JobTable:
    # job id -> a strong reference to its record (INCREF on store, DECREF on delete)
    cdef JobMap[Record] _map

    cdef Record _find(self, object job) except? NULL
    cdef void _drop(self, size_t slot)
