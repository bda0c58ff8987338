/* Memory for the kernels' big tables (job maps, ready-queue slots and lanes).
 *
 * A table of millions of jobs is read at random (a hash lookup per claimed
 * job), so past a few hundred MB nearly every lookup also misses the TLB. A
 * table of 2 MiB or more is therefore allocated 2 MiB-aligned and marked for
 * transparent huge pages (madvise, which is what this machine kind's kernel
 * honours): one TLB entry then covers 512 times as much table. Smaller tables
 * come from plain malloc. Both are released with free(). */
#ifndef BROKER_TABLE_ALLOC_H
#define BROKER_TABLE_ALLOC_H
#include <stddef.h>
#include <stdlib.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define BROKER_HUGE_PAGE ((size_t)2 << 20)

static inline void *broker_table_alloc(size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= BROKER_HUGE_PAGE) {
        size_t rounded = (bytes + BROKER_HUGE_PAGE - 1) & ~(BROKER_HUGE_PAGE - 1);
        void *p = aligned_alloc(BROKER_HUGE_PAGE, rounded);
        if (p != NULL) {
            madvise(p, rounded, MADV_HUGEPAGE); /* advice only: failure is harmless */
            return p;
        }
    }
#endif
    return malloc(bytes);
}

#ifdef __cplusplus
#include <new>
/* std::vector's allocator for the same memory. */
template <typename T>
struct BrokerTableAllocator {
    typedef T value_type;
    BrokerTableAllocator() noexcept {}
    template <typename U>
    BrokerTableAllocator(const BrokerTableAllocator<U>&) noexcept {}
    T *allocate(size_t n) {
        void *p = broker_table_alloc(n * sizeof(T));
        if (p == NULL) throw std::bad_alloc();
        return static_cast<T *>(p);
    }
    void deallocate(T *p, size_t) noexcept { free(p); }
    template <typename U>
    bool operator==(const BrokerTableAllocator<U>&) const noexcept { return true; }
    template <typename U>
    bool operator!=(const BrokerTableAllocator<U>&) const noexcept { return false; }
};
#endif
#endif
