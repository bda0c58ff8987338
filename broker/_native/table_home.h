/* The home slot of a job number in the kernels' big open-addressing tables
 * (the JobMap of lease_table.pxd and the ready queues' own table).
 *
 * Runs of 16 consecutive numbers share one start, the Fibonacci hash of
 * number / 16 reduced to the table (the high half of its product with the
 * size, Lemire's multiply-shift reduction: any size works, so a table can grow
 * by half instead of doubling), and take the slots after it in order. The engine
 * numbers jobs consecutively and claims them in that order, so a claim misses
 * the cache once per 16 jobs and table instead of once per job. Homes of the
 * number modulo the size would keep every number in order, but once live
 * numbers span more than the table a new run lands on old ones' homes and the
 * displaced entries pile up without bound; a run of 16 bounds that to about
 * 16 slots (docs/architecture.md). */
#ifndef BROKER_TABLE_HOME_H
#define BROKER_TABLE_HOME_H
#include <stddef.h>
#include <stdint.h>

#define BROKER_RUN_BITS 4

/* ``size`` must be at least 16, so one subtraction wraps a home past the end. */
static inline size_t broker_job_home(int64_t job, size_t size) {
    uint64_t hash = ((uint64_t)job >> BROKER_RUN_BITS) * 0x9E3779B97F4A7C15ULL;
    size_t start = (size_t)(((unsigned __int128)hash * size) >> 64);
    size_t home = start + (size_t)((uint64_t)job & ((1u << BROKER_RUN_BITS) - 1));
    return home >= size ? home - size : home;
}

#endif
