/*
 * Fixed-size lock-free ring of released ranges whose invalidation could not be finished inside the
 * release hook (the releasing thread is in the allocator, in libibverbs, or inside the cache). Any
 * thread pushes; the cache drains it under its lock at the start and end of every operation. A full
 * ring sets `overflow`, which the drain turns into "invalidate every region": nothing is lost and
 * memory stays bounded however many releases happen between cache operations.
 *
 * The ring itself is ffi/native/range_ring.h, shared with the memory hooks' event queue.
 */
#ifndef RCACHE_PENDING_RING_H
#define RCACHE_PENDING_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "range_ring.h"
#include "visibility.h"

#define RC_PENDING_SLOTS 256u /* power of two */

struct rc_pending_ring {
    struct range_ring ring;
    struct range_ring_cell cells[RC_PENDING_SLOTS];
    _Atomic bool overflow;
    _Atomic uint64_t overflows; /* times the ring was full (statistics) */
    /* Lock holder only: the position of a cell found stuck (claimed, not filled in time), or
     * UINT64_MAX. Later drains look at it once instead of waiting for it again. */
    uint64_t stuck_at;
};

RCACHE_TESTABLE void rc_pending_init(struct rc_pending_ring *pending);
/* Any thread, no locks, no allocation. A full ring raises `overflow` instead. */
RCACHE_TESTABLE void rc_pending_push(struct rc_pending_ring *pending, uintptr_t start,
                                     uintptr_t end);
/*
 * Lock holder only: 1 with the oldest range, 0 when empty, -1 when the oldest cell was claimed by
 * a pusher that has not filled it after a short wait. Then neither its range nor those behind it
 * can be read yet: the caller must assume any memory was released (see deferred.c, drain_rounds).
 */
RCACHE_TESTABLE int rc_pending_pop(struct rc_pending_ring *pending, uintptr_t *start,
                                   uintptr_t *end);
/* Lock holder only: how many cells pushers have claimed so far (a count that only grows). */
static inline size_t rc_pending_claimed(struct rc_pending_ring *pending)
{
    return (size_t)range_ring_claimed(&pending->ring);
}
/* Lock holder only: a cheap test (relaxed loads) for "pop or take_overflow may find work".
 * A push whose hook has returned before the caller's operation began is always seen. */
static inline bool rc_pending_maybe(struct rc_pending_ring *pending)
{
    return range_ring_maybe(&pending->ring) ||
           atomic_load_explicit(&pending->overflow, memory_order_relaxed);
}

/* Lock holder only: true once per overflow, which asks for a full invalidation. */
bool rc_pending_take_overflow(struct rc_pending_ring *pending);

#endif /* RCACHE_PENDING_RING_H */
