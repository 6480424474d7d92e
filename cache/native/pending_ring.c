/*
 * The pending-release ring (see pending_ring.h).
 */
#include "pending_ring.h"

#include <sched.h>
#include <time.h>

void rc_pending_init(struct rc_pending_ring *pending)
{
    range_ring_init(&pending->ring, pending->cells, RC_PENDING_SLOTS);
    atomic_store(&pending->overflow, false);
    atomic_store(&pending->overflows, 0);
    pending->stuck_at = UINT64_MAX;
}

void rc_pending_push(struct rc_pending_ring *pending, uintptr_t start, uintptr_t end)
{
    struct range_ring_entry entry = {.addr = start, .len = end - start};
    if (range_ring_push(&pending->ring, &entry))
        return;
    /* Full: the drain will invalidate everything, which covers this range too. */
    atomic_fetch_add(&pending->overflows, 1);
    atomic_store_explicit(&pending->overflow, true, memory_order_release);
}

/* How long a drain waits for a claimed cell before calling it stuck: a preempted pusher gets
 * several scheduler slices (a loaded machine), a stopped one costs this once. */
#define STUCK_AFTER_NS 5000000L

static long elapsed_ns(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/*
 * A cell a pusher has claimed but not yet filled: its range is on its way, and releases pushed
 * after it (whose memory may already be gone) wait behind it. The pusher is a few stores away from
 * publishing, so wait for it (yielding, in case it was preempted on this CPU), but not for ever: a
 * pusher can also be stopped for good (a signal handler that longjmps out of the hook, a thread
 * starved by a real-time one), and this runs with the cache lock held.
 */
static enum range_ring_pop pop_in_time(struct range_ring *ring, struct range_ring_entry *out)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (unsigned tries = 0;; tries++) {
        enum range_ring_pop popped = range_ring_pop(ring, out);
        if (popped != RANGE_RING_UNPUBLISHED)
            return popped;
        if (tries < 64)
            continue;
        if (elapsed_ns(&start) > STUCK_AFTER_NS)
            return RANGE_RING_UNPUBLISHED;
        sched_yield();
    }
}

int rc_pending_pop(struct rc_pending_ring *pending, uintptr_t *start, uintptr_t *end)
{
    struct range_ring_entry entry;
    enum range_ring_pop popped = range_ring_pop(&pending->ring, &entry);
    if (popped == RANGE_RING_UNPUBLISHED) {
        uint64_t at = atomic_load_explicit(&pending->ring.head, memory_order_relaxed);
        if (pending->stuck_at == at)
            return -1; /* waited for once already: no second wait */
        popped = pop_in_time(&pending->ring, &entry);
        if (popped == RANGE_RING_UNPUBLISHED) {
            pending->stuck_at = at;
            return -1;
        }
    }
    if (popped == RANGE_RING_EMPTY)
        return 0;
    pending->stuck_at = UINT64_MAX;
    *start = (uintptr_t)entry.addr;
    *end = (uintptr_t)(entry.addr + entry.len);
    return 1;
}

bool rc_pending_take_overflow(struct rc_pending_ring *pending)
{
    return atomic_exchange_explicit(&pending->overflow, false, memory_order_acq_rel);
}
