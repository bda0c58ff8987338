/* Start loading the cache line holding ``p``, so that a lookup a few steps
 * later finds it there: the kernels' batches fetch table slots ahead this way,
 * and the misses of a big table overlap instead of queueing.
 *
 * Inline assembly rather than ``__builtin_prefetch``: GCC 12 at -O2 deleted
 * the builtin as dead code wherever its address came through the job tables'
 * 128-bit multiply-shift home slot (table_home.h), so from commit 0eb9a6e on
 * no kernel prefetched anything (objdump found no prefetch instruction;
 * tests/differential/test_native_build.py now looks for one). A volatile
 * asm statement is never deleted; other compilers and machines keep the
 * builtin. */
#ifndef BROKER_PREFETCH_H
#define BROKER_PREFETCH_H

static inline void broker_prefetch(const void *p) {
#if defined(__GNUC__) && defined(__x86_64__)
    __asm__ volatile("prefetcht0 (%0)" : : "r"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ volatile("prfm pldl1keep, [%0]" : : "r"(p));
#elif defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

#endif
