/*
 * The pending-release ring (see pending_ring.h).
 */
#include "pending_ring.h"

#include <sched.h>
#include <stdint.h>
#include <time.h>

#define MASK (RC_PENDING_SLOTS - 1u)

void rc_pending_init(struct rc_pending_ring *ring)
{
    for (size_t i = 0; i < RC_PENDING_SLOTS; i++) {
        atomic_store_explicit(&ring->cells[i].sequence, i, memory_order_relaxed);
    }
    atomic_store(&ring->enqueue_at, 0);
    atomic_store(&ring->dequeue_at, 0);
    atomic_store(&ring->overflow, false);
    atomic_store(&ring->overflows, 0);
    ring->stuck_at = SIZE_MAX;
}

void rc_pending_push(struct rc_pending_ring *ring, uintptr_t start, uintptr_t end)
{
    size_t at = atomic_load_explicit(&ring->enqueue_at, memory_order_relaxed);
    for (;;) {
        struct rc_pending_cell *cell = &ring->cells[at & MASK];
        size_t sequence = atomic_load_explicit(&cell->sequence, memory_order_acquire);
        intptr_t lag = (intptr_t)sequence - (intptr_t)at;
        if (lag == 0) {
            if (atomic_compare_exchange_weak_explicit(&ring->enqueue_at, &at, at + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                cell->start = start;
                cell->end = end;
                atomic_store_explicit(&cell->sequence, at + 1, memory_order_release);
                return;
            }
        } else if (lag < 0) {
            /* Full: the drain will invalidate everything, which covers this range too. */
            atomic_fetch_add(&ring->overflows, 1);
            atomic_store_explicit(&ring->overflow, true, memory_order_release);
            return;
        } else {
            at = atomic_load_explicit(&ring->enqueue_at, memory_order_relaxed);
        }
    }
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
static bool published_in_time(struct rc_pending_cell *cell, size_t at)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (unsigned tries = 0;; tries++) {
        if (atomic_load_explicit(&cell->sequence, memory_order_acquire) == at + 1)
            return true;
        if (tries < 64)
            continue;
        if (elapsed_ns(&start) > STUCK_AFTER_NS)
            return false;
        sched_yield();
    }
}

int rc_pending_pop(struct rc_pending_ring *ring, uintptr_t *start, uintptr_t *end)
{
    size_t at = atomic_load_explicit(&ring->dequeue_at, memory_order_relaxed);
    struct rc_pending_cell *cell = &ring->cells[at & MASK];
    size_t sequence = atomic_load_explicit(&cell->sequence, memory_order_acquire);
    if (sequence != at + 1) {
        if (atomic_load_explicit(&ring->enqueue_at, memory_order_acquire) == at)
            return 0; /* empty */
        if (ring->stuck_at == at)
            return -1; /* waited for once already: no second wait */
        if (!published_in_time(cell, at)) {
            ring->stuck_at = at;
            return -1;
        }
    }
    ring->stuck_at = SIZE_MAX;
    *start = cell->start;
    *end = cell->end;
    atomic_store_explicit(&ring->dequeue_at, at + 1, memory_order_relaxed);
    atomic_store_explicit(&cell->sequence, at + RC_PENDING_SLOTS, memory_order_release);
    return 1;
}

size_t rc_pending_claimed(struct rc_pending_ring *ring)
{
    return atomic_load_explicit(&ring->enqueue_at, memory_order_acquire);
}

bool rc_pending_take_overflow(struct rc_pending_ring *ring)
{
    return atomic_exchange_explicit(&ring->overflow, false, memory_order_acq_rel);
}
