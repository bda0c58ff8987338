# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
"""Live jobs by id: the compiled twin of ``job_table_py.py``.

An open-addressing map from int64 job id to a record object (the lease
table's Robin Hood ``JobMap``): 16 bytes per slot, no boxed int key kept per
job, and one probe for most lookups, where a dict keeps a 32-byte int object
per key beside its entry and index. Listing is in id order, like the twin.
"""

cimport cython
from cpython.long cimport PyLong_CheckExact
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport int64_t
from libcpp.vector cimport vector

from ._keys cimport checked_int64 as _checked, dict_key as _key
from .lease_table cimport JOB_MAP_NONE


cdef enum:
    AHEAD = 16  # how many lookups ahead a batch prefetches table slots


@cython.auto_pickle(False)
cdef class JobTable:
    def __dealloc__(self):
        cdef size_t slot
        for slot in range(self._map.capacity()):
            if self._map.job_at(slot) >= 0:
                Py_DECREF(<object>self._map.at(slot)[0])

    def __len__(self):
        return self._map.size()

    def __contains__(self, job):
        return self._find(job) != NULL

    cdef Record _find(self, object job) except? NULL:
        cdef int64_t key
        if not _key(job, &key):
            return NULL
        cdef size_t slot = self._map.find(key)
        if slot == JOB_MAP_NONE:
            return NULL
        return self._map.at(slot)[0]

    cdef void _drop(self, size_t slot):
        cdef Record record = self._map.at(slot)[0]
        self._map.erase_at(slot)
        Py_DECREF(<object>record)

    def __getitem__(self, job):
        cdef Record record = self._find(job)
        if record == NULL:
            raise KeyError(job)
        return <object>record

    def get(self, job, default=None):
        cdef Record record = self._find(job)
        return default if record == NULL else <object>record

    def __setitem__(self, job, record):
        if not PyLong_CheckExact(job):
            raise ValueError("job must be a non-negative int64")
        cdef int64_t key = _checked(job, "job")
        cdef size_t slot = self._map.find(key)
        Py_INCREF(record)
        if slot != JOB_MAP_NONE:
            old = <object>self._map.at(slot)[0]
            self._map.at(slot)[0] = <PyObject*>record
            Py_DECREF(old)
        else:
            self._map.insert(key)[0] = <PyObject*>record

    def __delitem__(self, job):
        cdef int64_t key
        cdef size_t slot = JOB_MAP_NONE
        if _key(job, &key):
            slot = self._map.find(key)
        if slot == JOB_MAP_NONE:
            raise KeyError(job)
        self._drop(slot)

    def pop(self, job, *default):
        cdef Record record = self._find(job)
        if record == NULL:
            if default:
                return default[0]
            raise KeyError(job)
        value = <object>record
        del self[job]
        return value

    def get_many(self, jobs):
        """The record of each job, None where there is none."""
        cdef vector[int64_t] keys
        cdef vector[bint] valid
        cdef int64_t key = 0
        cdef size_t i, n, slot
        for job in jobs:
            valid.push_back(_key(job, &key))
            keys.push_back(key)
        n = keys.size()
        # a big table misses the cache on every lookup: fetch slots a few
        # lookups ahead so the misses overlap instead of queueing
        for i in range(min(n, AHEAD)):
            self._map.prefetch(keys[i])
        cdef list out = []
        for i in range(n):
            if i + AHEAD < n:
                self._map.prefetch(keys[i + AHEAD])
            slot = self._map.find(keys[i]) if valid[i] else JOB_MAP_NONE
            out.append(None if slot == JOB_MAP_NONE else <object>self._map.at(slot)[0])
        return out

    def pop_many(self, jobs):
        """Delete each job; KeyError at the first one missing (earlier ones stay deleted)."""
        cdef int64_t key
        cdef size_t slot
        for job in jobs:
            slot = self._map.find(key) if _key(job, &key) else JOB_MAP_NONE
            if slot == JOB_MAP_NONE:
                raise KeyError(job)
            self._drop(slot)

    def keys(self):
        cdef list out = []
        cdef size_t slot
        for slot in range(self._map.capacity()):
            if self._map.job_at(slot) >= 0:
                out.append(self._map.job_at(slot))
        out.sort()
        return out

    def values(self):
        return [self[job] for job in self.keys()]

    def items(self):
        return [(job, self[job]) for job in self.keys()]

    def __iter__(self):
        return iter(self.keys())

    def clear(self):
        cdef size_t slot
        cdef list held = []  # released after the map is empty: a record's finaliser may look
        for slot in range(self._map.capacity()):
            if self._map.job_at(slot) >= 0:
                held.append(<object>self._map.at(slot)[0])
                Py_DECREF(<object>self._map.at(slot)[0])
        self._map.clear()

    def __repr__(self):
        return f"JobTable({len(self)} jobs)"
