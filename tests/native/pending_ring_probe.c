/*
 * Test support: the cache's pending-release ring (cache/native/pending_ring.c) with a pusher that
 * stops between claiming a cell and filling it, as a preempted or interrupted thread does (the
 * ring's two halves of a push, ffi/native/range_ring.h, called apart).
 */
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
    uint64_t claimed;
    if (!range_ring_claim(&ring.ring, &claimed)) /* cell 0 claimed, not filled */
        return 1;
    rc_pending_push(&ring, 0x2000, 0x3000);
    uintptr_t start = 0, end = 0;
    if (rc_pending_pop(&ring, &start, &end) != -1)
        return 1;
    if (rc_pending_claimed(&ring) != 2)
        return 2;
    struct range_ring_entry first = {.addr = 0x1000, .len = 0x1000};
    range_ring_publish(&ring.ring, claimed, &first);
    if (rc_pending_pop(&ring, &start, &end) != 1 || start != 0x1000 || end != 0x2000)
        return 3;
    if (rc_pending_pop(&ring, &start, &end) != 1 || start != 0x2000 || end != 0x3000)
        return 4;
    if (rc_pending_pop(&ring, &start, &end) != 0)
        return 5;
    return 0;
}
