/*
 * The lock-free range ring (see range_ring.h).
 */
#include "range_ring.h"

void range_ring_init(struct range_ring *ring, struct range_ring_cell *cells, uint64_t slots)
{
    ring->cells = cells;
    ring->mask = slots - 1;
    for (uint64_t i = 0; i < slots; i++)
        atomic_store_explicit(&cells[i].sequence, i, memory_order_relaxed);
    atomic_store_explicit(&ring->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&ring->head, 0, memory_order_relaxed);
}

bool range_ring_claim(struct range_ring *ring, uint64_t *pos)
{
    uint64_t at = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    for (;;) {
        struct range_ring_cell *cell = &ring->cells[at & ring->mask];
        /* Acquire: the consumer's reads of this cell's previous range are over. */
        uint64_t sequence = atomic_load_explicit(&cell->sequence, memory_order_acquire);
        int64_t lag = (int64_t)(sequence - at);
        if (lag == 0) {
            /* Relaxed: the cell's sequence, not the position, orders what is written to it. */
            if (atomic_compare_exchange_weak_explicit(&ring->tail, &at, at + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                *pos = at;
                return true;
            }
        } else if (lag < 0) {
            return false; /* the consumer has not freed this cell since the last lap: full */
        } else {
            at = atomic_load_explicit(&ring->tail, memory_order_relaxed); /* another pusher won */
        }
    }
}

void range_ring_publish(struct range_ring *ring, uint64_t pos, const struct range_ring_entry *entry)
{
    struct range_ring_cell *cell = &ring->cells[pos & ring->mask];
    cell->entry = *entry;
    /* Release: the range is written before the consumer can see the cell full. */
    atomic_store_explicit(&cell->sequence, pos + 1, memory_order_release);
}

bool range_ring_push(struct range_ring *ring, const struct range_ring_entry *entry)
{
    uint64_t pos;
    if (!range_ring_claim(ring, &pos))
        return false;
    range_ring_publish(ring, pos, entry);
    return true;
}

uint64_t range_ring_publish_claimed(struct range_ring *ring, const struct range_ring_entry *entry)
{
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    uint64_t published = 0;
    for (uint64_t pos = atomic_load_explicit(&ring->head, memory_order_relaxed); pos != tail;
         pos++) {
        struct range_ring_cell *cell = &ring->cells[pos & ring->mask];
        if (atomic_load_explicit(&cell->sequence, memory_order_acquire) == pos + 1)
            continue;
        range_ring_publish(ring, pos, entry);
        published++;
    }
    return published;
}
