from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libcpp.deque cimport deque
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

# A (tenant, job type) key for the queue map; std::hash has no pair overload.
cdef extern from *:
    """
    #include <cstddef>
    #include <cstdint>

    struct rq_qkey {
        int64_t tenant;
        int64_t jtype;
        bool operator==(const rq_qkey &o) const {
            return tenant == o.tenant && jtype == o.jtype;
        }
    };

    struct rq_qkey_hash {
        size_t operator()(const rq_qkey &k) const noexcept {
            uint64_t h = (uint64_t)k.tenant * 0x9E3779B97F4A7C15ULL;
            h ^= (uint64_t)k.jtype + 0x7F4A7C159E3779B9ULL + (h << 6) + (h >> 2);
            return (size_t)(h ^ (h >> 29));
        }
    };
    """
    cdef struct rq_qkey:
        int64_t tenant
        int64_t jtype

    cdef cppclass rq_qkey_hash:
        pass

# Lookups in the job table are cache misses on big structures; a slot needed a
# few steps later is fetched ahead so the misses overlap.
cdef extern from "prefetch.h":
    void broker_prefetch(const void *p) noexcept nogil

cdef enum:
    PRIORITIES = 10

# One lane entry; ``seq`` tells a live entry from a stale one (lazy removal).
cdef struct Entry:
    int64_t seq
    int64_t job

# A growable circular buffer (power-of-two capacity). Unlike std::deque, an
# empty lane allocates nothing, which matters with ten lanes per queue and one
# queue per (tenant, job type).
cdef struct Lane:
    Entry *buf
    uint32_t cap
    uint32_t head
    uint32_t size

cdef struct Queue:
    Lane lanes[PRIORITIES]
    int64_t tenant
    int64_t depth      # live jobs; lanes may also hold stale entries
    int32_t ring       # index of the job type's ring in ReadyQueues._rings
    uint16_t mask      # bit p set while lane p holds entries (live or stale)
    bint held
    bint in_ring

# A queued job: its live sequence number, queue index and lane. Slots live in
# an open-addressing table (Robin Hood linear probing, backward-shift deletion,
# runs of 16 consecutive ids kept together; see the .pyx): one probe
# usually settles a lookup, where std::unordered_map chases bucket and node
# pointers, and a slot takes 24 bytes instead of a 32-byte node plus buckets.
cdef struct Slot:
    int64_t job        # EMPTY_SLOT when free (jobs are non-negative)
    int64_t seq
    int32_t queue      # -1 while a batch has claimed the job but not placed it
    int32_t priority

cdef struct JobTable:
    Slot *slots
    size_t cap         # any size (grown by half), 0 before the first insert
    size_t size

ctypedef unordered_map[rq_qkey, int32_t, rq_qkey_hash] queue_map


cdef class ReadyQueues:
    cdef vector[Queue] _queues
    cdef queue_map _queue_of
    cdef JobTable _jobs
    cdef int64_t _seq
    cdef int64_t _front_seq
    # per job type: a ring of queue indices (DRR order) and the head's credit
    cdef unordered_map[int64_t, int32_t] _ring_of
    cdef vector[deque[int32_t]] _rings
    cdef vector[int64_t] _credit
    cdef unordered_map[int64_t, int64_t] _weights

    cdef int32_t _queue(self, int64_t tenant, int64_t jtype) except -1
    cdef int32_t _find_queue(self, int64_t tenant, int64_t jtype)
    cdef int _enter_ring(self, Queue *queue, int32_t qi) except -1
    cdef int _place(self, Slot *slot, int32_t qi, bint front) except -1
    cdef int _push_batch(self, jobs, tenants, jtypes, priorities, bint front) except -1
    cdef void _unclaim(self, const int64_t *jobs, size_t n)
    cdef bint _remove(self, int64_t job)
    cdef int64_t _weight(self, int64_t tenant)
    cdef int _head(self, Queue *queue)
    cdef int _take(self, Queue *queue, int priority, vector[int64_t] *out) except -1
    cdef int64_t _pop_queue(self, Queue *queue, int64_t n, vector[int64_t] *out) except -1
    cdef int64_t _ring_turn(self, int32_t ring, int64_t remaining, vector[int64_t] *out) except -1
    cdef int _pop_tenant(
        self, int64_t k, const vector[int64_t] *types, int64_t tenant, vector[int64_t] *out
    ) except -1
