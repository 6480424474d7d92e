/*
 * Applying what was deferred, under the cache lock: the releases TypeScript queued without a call
 * (struct rcache_release_queue), and the released ranges release hooks could not apply themselves
 * (the pending ring). Whoever takes the lock next, an operation or a release hook on any thread,
 * applies both before anything else.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcache_internal.h"

void rc_apply_queued_releases(struct rc_cache *c)
{
    struct rcache_release_queue *q = &c->releases;
    uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (head == tail)
        return;
    for (; head != tail; head++) {
        double handle = q->handles[head & (RCACHE_RELEASE_SLOTS - 1)];
        if (rc_put_region(c, (struct rc_region *)(uintptr_t)(uint64_t)handle) != 0)
            c->stats[RCACHE_STAT_BAD_RELEASES]++;
    }
    atomic_store_explicit(&q->head, head, memory_order_release);
}

/* Applies what the pending ring and the graveyard hold, until a round finds nothing more. False
 * when a stuck ring cell was met (everything was invalidated instead). */
static bool drain_rounds(struct rc_cache *c, bool in_hook)
{
    for (int round = 0; round < 8; round++) {
        bool worked = false;
        if (rc_pending_take_overflow(&c->pending)) {
            rc_invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
            worked = true;
        }
        uintptr_t start, end;
        int popped;
        while ((popped = rc_pending_pop(&c->pending, &start, &end)) > 0) {
            rc_invalidate_range(c, start, end, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
            worked = true;
        }
        if (popped < 0) {
            /*
             * A stuck cell hides the ranges behind it, whose memory may be gone: like an overflow,
             * release everything, unless no cell was claimed since the last time (all covered
             * then). The ring stays where it is; the caller keeps the deferred bit set so later
             * operations come back here until the cell is filled.
             */
            size_t claimed = rc_pending_claimed(&c->pending);
            if (!c->stuck_covered_valid || c->stuck_covered != claimed) {
                rc_invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
                atomic_fetch_add(&c->pending.overflows, 1); /* an overflow: the same remedy */
                c->stuck_covered = claimed;
                c->stuck_covered_valid = true;
            }
            if (!in_hook && c->graveyard)
                rc_free_graveyard(c);
            return false;
        }
        if (!in_hook && c->graveyard) {
            rc_free_graveyard(c);
            worked = true;
        }
        if (!worked)
            return true;
    }
    return true;
}

/*
 * Deregistering deferred releases here is safe: this thread is not inside the allocator or
 * libibverbs. Loops because deregistering and freeing can release more memory.
 */
void rc_drain_deferred(struct rc_cache *c, bool in_hook)
{
    /*
     * DRAINING replaces DEFERRED in one exchange, so the word never reads 0 while a range this
     * drain has popped is not applied yet: TypeScript, on another thread, may be about to take a
     * hold through the front word of a region in that range. DEFERRED is cleared before the ring
     * is read: a hook that defers pushes first and sets DEFERRED last, so either this drain pops
     * its range or the bit stays set after it.
     */
    atomic_exchange_explicit(&c->releases.deferred, RCACHE_DRAINING, memory_order_seq_cst);
    if (!drain_rounds(c, in_hook)) {
        /* Ranges are still hidden in the ring: hits keep coming here (set before DRAINING goes). */
        atomic_fetch_or_explicit(&c->releases.deferred, RCACHE_DEFERRED, memory_order_seq_cst);
    }
    atomic_fetch_and_explicit(&c->releases.deferred, ~RCACHE_DRAINING, memory_order_seq_cst);
}
