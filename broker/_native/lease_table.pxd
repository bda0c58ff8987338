from libc.stdint cimport int64_t, uint64_t
from libcpp.vector cimport vector


cdef extern from * nogil:
    """
    #include <cstddef>
    #include <cstdint>
    #include <utility>
    #include <vector>
    #include "prefetch.h"
    #include "table_alloc.h"
    #include "table_home.h"

    // One deadline-index entry; live only while the job's lease still has
    // this token and this deadline.
    struct DeadlineEntry {
        int64_t deadline;
        int64_t token;
        int64_t job;
    };

    // The heap order. std heaps keep the greatest element on top, so "later
    // first" makes a min-heap by (deadline, token, job). A functor rather than
    // a function pointer, so the comparisons inline into the heap algorithms.
    struct LaterDeadline {
        bool operator()(const DeadlineEntry& a, const DeadlineEntry& b) const {
            if (a.deadline != b.deadline) return a.deadline > b.deadline;
            if (a.token != b.token) return a.token > b.token;
            return a.job > b.job;
        }
    };

    // Open-addressing map from a job (int64 >= 0) to a value, job -1 marking
    // a free slot: Robin Hood linear probing in a table at most 3/4 full that
    // grows by half (any size: the home slot is a multiply-shift range
    // reduction, not a mask), with backward-shift erase (no tombstones). Unlike a node
    // based std::unordered_map, a lookup mostly touches one cache line, and
    // inserting or erasing allocates nothing. Robin Hood order bounds the
    // probes: a lookup or erase stops at the first entry nearer its home than
    // the probe. Slots are addressed by index; an insert may move every slot.
    // A job's home slot keeps runs of 16 consecutive ids together
    // (table_home.h).
    static const size_t JOB_MAP_NONE = (size_t)-1;

    template <typename V>
    class JobMap {
      public:
        JobMap() { clear(); }

        size_t size() const { return count_; }
        size_t capacity() const { return slots_.size(); }
        int64_t job_at(size_t slot) const { return slots_[slot].job; }
        V* at(size_t slot) { return &slots_[slot].value; }

        size_t find(int64_t job) const {
            if (job < 0) return JOB_MAP_NONE;
            for (size_t i = home(job), dist = 0;; i = next(i), ++dist) {
                int64_t other = slots_[i].job;
                if (other == job) return i;
                if (other < 0 || displacement(i, other) < dist) return JOB_MAP_NONE;
            }
        }

        // Start loading the slot where a lookup of ``job`` begins.
        void prefetch(int64_t job) const { broker_prefetch(&slots_[home(job)]); }

        // A fresh value slot for ``job``, which must be absent and >= 0.
        V* insert(int64_t job) {
            if ((count_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() + slots_.size() / 2);
            ++count_;
            return place(Slot{job, V()});
        }

        void erase_at(size_t hole) {
            // Shift the rest of the run back by one, up to an entry at its home.
            for (size_t i = next(hole);; i = next(i)) {
                int64_t job = slots_[i].job;
                if (job < 0 || displacement(i, job) == 0) break;
                slots_[hole] = slots_[i];
                hole = i;
            }
            slots_[hole].job = -1;
            --count_;
        }

        void clear() {
            std::vector<Slot, BrokerTableAllocator<Slot>>(16, Slot{-1, V()}).swap(slots_);
            count_ = 0;
        }

      private:
        struct Slot {
            int64_t job;
            V value;
        };
        std::vector<Slot, BrokerTableAllocator<Slot>> slots_;
        size_t count_;

        size_t home(int64_t job) const { return broker_job_home(job, slots_.size()); }

        size_t next(size_t slot) const {
            return slot + 1 == slots_.size() ? 0 : slot + 1;
        }

        size_t displacement(size_t slot, int64_t job) const {
            size_t from = home(job);
            return slot >= from ? slot - from : slot + slots_.size() - from;
        }

        // Robin Hood insert: an entry further from its home takes the slot of
        // one nearer to its own, which moves on. Returns where ``carry`` lands.
        V* place(Slot carry) {
            V* landed = nullptr;
            for (size_t i = home(carry.job), dist = 0;; i = next(i), ++dist) {
                Slot& slot = slots_[i];
                if (slot.job < 0) {
                    slot = carry;
                    return landed ? landed : &slot.value;
                }
                size_t other = displacement(i, slot.job);
                if (other < dist) {
                    std::swap(slot, carry);
                    if (!landed) landed = &slot.value;
                    dist = other;
                }
            }
        }

        void rehash(size_t capacity) {
            std::vector<Slot, BrokerTableAllocator<Slot>> old(capacity, Slot{-1, V()});
            old.swap(slots_);
            for (const Slot& slot : old) {
                if (slot.job >= 0) place(slot);
            }
        }
    };
    """
    const size_t JOB_MAP_NONE

    cdef struct DeadlineEntry:
        int64_t deadline
        int64_t token
        int64_t job

    cdef cppclass LaterDeadline:
        pass

    cdef cppclass JobMap[V]:
        size_t size()
        size_t capacity()
        int64_t job_at(size_t slot)
        V* at(size_t slot)
        size_t find(int64_t job)
        void prefetch(int64_t job)
        V* insert(int64_t job) except +
        void erase_at(size_t slot)
        void clear() except +


cdef struct Lease:
    int64_t token
    int64_t worker
    int64_t deadline


cdef class LeaseTable:
    cdef JobMap[Lease] _leases
    cdef vector[DeadlineEntry] _heap  # a heap under LaterDeadline, lazy deletion
    # uint64 because restoring token 2**63 - 1 leaves the counter at 2**63.
    cdef uint64_t _next
    cdef vector[int64_t] _granted  # grant_many() scratch, kept: no allocation per call

    cdef Lease* _find(self, object job, int64_t* key) except? NULL
    cdef void _prefetch_head(self, const vector[int64_t]& keys) noexcept
    cdef int _reserve_heap(self, size_t more) except -1
    cdef int _push(self, int64_t deadline, int64_t token, int64_t job) except -1
    cdef void _drop_stale_head(self) noexcept
    cdef int _maybe_compact(self) except -1
