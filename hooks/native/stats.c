/*
 * The statistics counters (struct memhooks_stats): counted by the dispatch and the queues, read by
 * memhooks_stats().
 */
#include "memhooks_internal.h"

_Atomic uint64_t mh_stat_release, mh_stat_alloc, mh_stat_nested, mh_stat_coalesced, mh_stat_queued;

void memhooks_stats(struct memhooks_stats *out)
{
    out->releases = atomic_load(&mh_stat_release);
    out->allocs = atomic_load(&mh_stat_alloc);
    out->nested = atomic_load(&mh_stat_nested);
    out->coalesced = atomic_load(&mh_stat_coalesced);
    out->queued = atomic_load(&mh_stat_queued);
}
