/*
 * Fixed-size lock-free ring of released ranges whose invalidation could not be finished inside the
 * release hook (the releasing thread is in the allocator, in libibverbs, or inside the cache). Any
 * thread pushes; the cache drains it under its lock at the start and end of every operation. A full
 * ring sets `overflow`, which the drain turns into "invalidate every region": nothing is lost and
 * memory stays bounded however many releases happen between cache operations.
 *
 * Bounded multi-producer queue with per-cell sequence numbers (after D. Vyukov's design).
 */
#ifndef RCACHE_PENDING_RING_H
#define RCACHE_PENDING_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "visibility.h"

#define RC_PENDING_SLOTS 256u /* power of two */

struct rc_pending_cell {
    _Atomic size_t sequence;
    uintptr_t start, end;
};

struct rc_pending_ring {
    struct rc_pending_cell cells[RC_PENDING_SLOTS];
    _Atomic size_t enqueue_at;
    _Atomic size_t dequeue_at; /* only the lock holder moves it */
    _Atomic bool overflow;
    _Atomic uint64_t overflows; /* times the ring was full (statistics) */
    /* Lock holder only: the position of a cell found stuck (claimed, not filled in time), or
     * SIZE_MAX. Later drains look at it once instead of waiting for it again. */
    size_t stuck_at;
};

RCACHE_TESTABLE void rc_pending_init(struct rc_pending_ring *ring);
/* Any thread, no locks, no allocation. A full ring raises `overflow` instead. */
RCACHE_TESTABLE void rc_pending_push(struct rc_pending_ring *ring, uintptr_t start, uintptr_t end);
/*
 * Lock holder only: 1 with the oldest range, 0 when empty, -1 when the oldest cell was claimed by
 * a pusher that has not filled it after a short wait. Then neither its range nor those behind it
 * can be read yet: the caller must assume any memory was released (see deferred.c, drain_rounds).
 */
RCACHE_TESTABLE int rc_pending_pop(struct rc_pending_ring *ring, uintptr_t *start, uintptr_t *end);
/* Lock holder only: how many cells pushers have claimed so far (a count that only grows). */
RCACHE_TESTABLE size_t rc_pending_claimed(struct rc_pending_ring *ring);
/* Lock holder only: a cheap test (two relaxed loads) for "pop or take_overflow may find work".
 * A push whose hook has returned before the caller's operation began is always seen. */
static inline bool rc_pending_maybe(struct rc_pending_ring *ring)
{
    return atomic_load_explicit(&ring->enqueue_at, memory_order_relaxed) !=
               atomic_load_explicit(&ring->dequeue_at, memory_order_relaxed) ||
           atomic_load_explicit(&ring->overflow, memory_order_relaxed);
}

/* Lock holder only: true once per overflow, which asks for a full invalidation. */
bool rc_pending_take_overflow(struct rc_pending_ring *ring);

#endif /* RCACHE_PENDING_RING_H */
