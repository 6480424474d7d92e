/*
 * A bounded lock-free ring of ranges: any thread pushes (no lock, no allocation, no system call),
 * one consumer at a time pops. Used twice: the memory hooks' event queue per subscriber
 * (hooks/native/queue.c) and the cache's ring of releases not applied inside the hook
 * (cache/native/pending_ring.c). What to do when it is full is the user's: each folds the range
 * into something that covers it.
 *
 * Per-cell sequence numbers (after D. Vyukov's bounded queue): a cell is free for position `pos`
 * when its sequence is `pos`, and holds that position's range when it is `pos + 1`. A push is two
 * halves, claim then publish; between them the cell is claimed but not readable, and so is every
 * cell behind it. A pusher stopped there (preempted, or gone for good: a signal handler that
 * longjmps, a fork) leaves exactly that state, which is also how the tests make it: claim without
 * publishing.
 *
 * Orderings (correct on weakly ordered CPUs): the pusher's acquire load of a free sequence pairs
 * with the consumer's release store that freed it (the consumer's reads of the previous range come
 * first); the consumer's acquire load of a full sequence pairs with the pusher's release store
 * after it wrote the range. The positions themselves carry no data, so they move relaxed.
 *
 * Functions are hidden: each library that lists range_ring.c has its own copy.
 */
#ifndef RANGE_RING_H
#define RANGE_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RANGE_RING_HIDDEN __attribute__((visibility("hidden")))

struct range_ring_entry {
    uint64_t addr;
    uint64_t len;
    uint32_t flags; /* the user's */
};

struct range_ring_cell {
    _Atomic uint64_t sequence;
    struct range_ring_entry entry;
};

struct range_ring {
    struct range_ring_cell *cells; /* set by init, then read-only */
    uint64_t mask;                 /* slots - 1 */
    /* The next position to claim; every pusher moves it. */
    _Alignas(64) _Atomic uint64_t tail;
    /* The next position to pop: only the consumer moves it (atomic so others may peek). */
    _Alignas(64) _Atomic uint64_t head;
};

enum range_ring_pop {
    RANGE_RING_EMPTY = 0,
    RANGE_RING_POPPED = 1,
    /* The oldest cell is claimed, not yet published: neither it nor any behind it can be read. */
    RANGE_RING_UNPUBLISHED = -1,
};

/* `slots` (a power of two) cells at `cells`. Not while anyone pushes or pops. */
RANGE_RING_HIDDEN void range_ring_init(struct range_ring *ring, struct range_ring_cell *cells,
                                       uint64_t slots);
/* Claims the next free cell: true with its position, false when the ring is full. */
RANGE_RING_HIDDEN bool range_ring_claim(struct range_ring *ring, uint64_t *pos);
/* Writes a claimed cell's range and makes it (and the published cells behind it) readable. */
RANGE_RING_HIDDEN void range_ring_publish(struct range_ring *ring, uint64_t pos,
                                          const struct range_ring_entry *entry);
/* Claim and publish: false (nothing written) when the ring is full. */
RANGE_RING_HIDDEN bool range_ring_push(struct range_ring *ring,
                                       const struct range_ring_entry *entry);
/*
 * Only when no pusher can run any more (a forked child, where the pushers were the parent's other
 * threads): publishes `entry` in every claimed cell not published. Returns how many.
 */
RANGE_RING_HIDDEN uint64_t range_ring_publish_claimed(struct range_ring *ring,
                                                      const struct range_ring_entry *entry);

/* How many cells pushers have claimed so far (a count that only grows). */
static inline uint64_t range_ring_claimed(struct range_ring *ring)
{
    return atomic_load_explicit(&ring->tail, memory_order_acquire);
}

/* Consumer only: a cheap test (two relaxed loads) for "pop may find something". A push that has
 * returned before the caller's operation began is always seen (the caller's lock orders them). */
static inline bool range_ring_maybe(struct range_ring *ring)
{
    return atomic_load_explicit(&ring->tail, memory_order_relaxed) !=
           atomic_load_explicit(&ring->head, memory_order_relaxed);
}

/*
 * Consumer only: the oldest range into *out and frees its cell, or says why not. Inline: a drain
 * pops once per event.
 */
static inline enum range_ring_pop range_ring_pop(struct range_ring *ring,
                                                 struct range_ring_entry *out)
{
    uint64_t at = atomic_load_explicit(&ring->head, memory_order_relaxed);
    struct range_ring_cell *cell = &ring->cells[at & ring->mask];
    /* Acquire: the pusher's writes of the range come before its sequence. */
    if (atomic_load_explicit(&cell->sequence, memory_order_acquire) != at + 1) {
        return atomic_load_explicit(&ring->tail, memory_order_acquire) == at
                   ? RANGE_RING_EMPTY
                   : RANGE_RING_UNPUBLISHED;
    }
    *out = cell->entry;
    atomic_store_explicit(&ring->head, at + 1, memory_order_relaxed);
    /* Release: the range is read before a pusher may claim the cell for the next lap. */
    atomic_store_explicit(&cell->sequence, at + ring->mask + 1, memory_order_release);
    return RANGE_RING_POPPED;
}

#endif /* RANGE_RING_H */
