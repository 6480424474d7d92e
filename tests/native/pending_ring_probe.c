/*
 * Test support: the cache's pending-release ring (cache/native/pending_ring.c) with a pusher that
 * stops between claiming a cell and filling it, as a preempted or interrupted thread does.
 */
#include <stdatomic.h>

#include "pending_ring.h"

static struct rc_pending_ring ring;

/*
 * A claimed cell, then a range pushed behind it: the pop reports the stuck cell (-1) instead of
 * "empty" or waiting for ever; once the cell is filled both ranges come out in order, then the
 * ring is empty. Returns 0, or the number of the step that failed.
 */
int ring_pop_behind_claimed_cell(void)
{
    rc_pending_init(&ring);
    atomic_fetch_add(&ring.enqueue_at, 1); /* cell 0 claimed, not filled */
    rc_pending_push(&ring, 0x2000, 0x3000);
    uintptr_t start = 0, end = 0;
    if (rc_pending_pop(&ring, &start, &end) != -1)
        return 1;
    if (rc_pending_claimed(&ring) != 2)
        return 2;
    ring.cells[0].start = 0x1000;
    ring.cells[0].end = 0x2000;
    atomic_store_explicit(&ring.cells[0].sequence, 1, memory_order_release);
    if (rc_pending_pop(&ring, &start, &end) != 1 || start != 0x1000 || end != 0x2000)
        return 3;
    if (rc_pending_pop(&ring, &start, &end) != 1 || start != 0x2000 || end != 0x3000)
        return 4;
    if (rc_pending_pop(&ring, &start, &end) != 0)
        return 5;
    return 0;
}
