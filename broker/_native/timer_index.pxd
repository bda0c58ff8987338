from libc.stdint cimport int64_t
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector


cdef struct Timer:
    int64_t due
    int64_t seq  # which add put the job here; tells its live heap entry apart


cdef extern from * nogil:
    """
    #include <cstdint>

    // One heap entry; live only while the job's timer still has this seq.
    struct DueEntry {
        int64_t due;
        int64_t seq;
        int64_t job;
    };

    // The heap order. std heaps keep the greatest element on top, so "later
    // first" makes a min-heap by (due, seq, job). A functor rather than a
    // function pointer, so the comparisons inline into the heap algorithms.
    struct LaterDue {
        bool operator()(const DueEntry& a, const DueEntry& b) const {
            if (a.due != b.due) return a.due > b.due;
            if (a.seq != b.seq) return a.seq > b.seq;
            return a.job > b.job;
        }
    };
    """
    cdef struct DueEntry:
        int64_t due
        int64_t seq
        int64_t job

    cdef cppclass LaterDue:
        pass


cdef class TimerIndex:
    cdef unordered_map[int64_t, Timer] _due
    cdef vector[DueEntry] _heap  # a heap under LaterDue, lazy deletion
    cdef int64_t _seq

    cdef int _add(self, int64_t job, int64_t due) except -1
    cdef void _drop_stale_head(self) noexcept
    cdef int _maybe_compact(self) except -1
