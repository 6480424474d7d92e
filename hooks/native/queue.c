/*
 * The event queue the TypeScript side drains: a bounded multi-producer, single-consumer ring.
 *
 * Producers are hooks on any thread; they never block and never allocate. When the ring is full an
 * event is folded into an overflow range per kind (release, alloc) that covers every folded event;
 * the consumer delivers it after the ring's events as one event flagged MEMHOOKS_EVENT_COALESCED.
 * Nothing is lost and memory stays bounded. Each overflow range is one 16-byte word updated with
 * cmpxchg16b, so its two ends always belong together.
 */
#include <string.h>

#include "memhooks_internal.h"

#define RING_SIZE 4096 /* power of two */

struct cell {
    _Atomic uint64_t seq; /* == position when free for that position, position + 1 when full */
    uint64_t addr;
    uint64_t len;
    uint32_t flags;
};

static struct cell ring[RING_SIZE];
static _Atomic uint64_t ring_tail; /* next position a producer claims */
static uint64_t ring_head;         /* next position the consumer reads (consumer only) */
static _Atomic bool ring_ready;

/* Overflow ranges as {low address, end address}; empty when low >= end. */
typedef unsigned __int128 range128;
static range128 overflow[2] __attribute__((aligned(16)));
static _Atomic uint32_t overflow_from_program[2]; /* any folded event not from the allocator */

/* Nonzero when something may be waiting; read by TypeScript with Atomics, so it is an int32. */
static _Atomic int32_t pending_word;

static const range128 EMPTY_RANGE = (range128)UINT64_MAX;

static void ring_init(void)
{
    /* No producer runs here: the queue is started under the API lock before hooks may queue. */
    ring_head = 0;
    for (uint64_t i = 0; i < RING_SIZE; i++)
        atomic_store_explicit(&ring[i].seq, i, memory_order_relaxed);
    atomic_store(&ring_tail, 0);
    overflow[0] = overflow[1] = EMPTY_RANGE;
    ring_ready = true;
}

void mh_queue_reset(void)
{
    /* Called with no producer possible (finalize, after the hooks stopped queueing). */
    ring_ready = false;
    atomic_store(&pending_word, 0);
}

static void fold_overflow(int kind, uint64_t addr, uint64_t len, uint32_t flags)
{
    /* A torn first read only makes the first compare-and-swap fail and return the real value. */
    range128 old = *(volatile range128 *)&overflow[kind];
    for (;;) {
        uint64_t lo = (uint64_t)old, end = (uint64_t)(old >> 64);
        if (lo >= end) {
            lo = addr;
            end = addr + len;
        } else {
            if (addr < lo)
                lo = addr;
            if (addr + len > end)
                end = addr + len;
        }
        range128 update = ((range128)end << 64) | lo;
        range128 seen = __sync_val_compare_and_swap(&overflow[kind], old, update);
        if (seen == old)
            break;
        old = seen;
    }
    if (!(flags & MEMHOOKS_EVENT_FROM_ALLOC))
        atomic_store(&overflow_from_program[kind], 1);
    atomic_fetch_add_explicit(&mh_stat_coalesced, 1, memory_order_relaxed);
}

static void mark_pending(void)
{
    /*
     * The fence orders the cell's publication before the load below (x86 may reorder a store with
     * a later load): the drain clears the word and then reads the cells, so either it sees this
     * cell or this load sees the cleared word and sets it again.
     */
    atomic_thread_fence(memory_order_seq_cst);
    /* Load first: a store on every event would bounce the cache line between threads. */
    if (!atomic_load(&pending_word))
        atomic_store(&pending_word, 1);
}

void mh_queue_push(uintptr_t addr, size_t len, uint32_t flags)
{
    if (!ring_ready)
        return;
    atomic_fetch_add_explicit(&mh_stat_queued, 1, memory_order_relaxed);
    uint64_t pos = atomic_load_explicit(&ring_tail, memory_order_relaxed);
    for (;;) {
        struct cell *cell = &ring[pos & (RING_SIZE - 1)];
        uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&ring_tail, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                cell->addr = addr;
                cell->len = len;
                cell->flags = flags;
                atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
                break;
            }
        } else if (diff < 0) {
            fold_overflow((flags & MEMHOOKS_EVENT_ALLOC) ? 1 : 0, addr, len, flags);
            break;
        } else {
            pos = atomic_load_explicit(&ring_tail, memory_order_relaxed);
        }
    }
    mark_pending();
}

static bool take_overflow(int kind, struct memhooks_event *out)
{
    range128 got = __sync_lock_test_and_set(&overflow[kind], EMPTY_RANGE);
    uint64_t lo = (uint64_t)got, end = (uint64_t)(got >> 64);
    if (lo >= end)
        return false;
    bool from_program = atomic_exchange(&overflow_from_program[kind], 0);
    out->addr = lo;
    out->len = end - lo;
    out->flags = (kind ? MEMHOOKS_EVENT_ALLOC : MEMHOOKS_EVENT_RELEASE) | MEMHOOKS_EVENT_COALESCED |
                 (from_program ? 0 : MEMHOOKS_EVENT_FROM_ALLOC);
    out->reserved = 0;
    return true;
}

size_t memhooks_queue_drain(struct memhooks_event *out, size_t max)
{
    if (!out || max == 0)
        return 0;
    if (!ring_ready)
        return 0;
    /* Cleared before reading: an event published after this store sets it again. */
    atomic_store(&pending_word, 0);
    size_t n = 0;
    while (n < max) {
        struct cell *cell = &ring[ring_head & (RING_SIZE - 1)];
        uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        if (seq != ring_head + 1)
            break;
        out[n].addr = cell->addr;
        out[n].len = cell->len;
        out[n].flags = cell->flags;
        out[n].reserved = 0;
        n++;
        atomic_store_explicit(&cell->seq, ring_head + RING_SIZE, memory_order_release);
        ring_head++;
    }
    /* The ring is empty (or out is full): covering ranges of what overflowed come after. */
    for (int kind = 0; kind < 2 && n < max; kind++)
        if (take_overflow(kind, &out[n]))
            n++;
    if (n == max)
        mark_pending(); /* maybe more: make the next check call again */
    return n;
}

/*
 * In a forked child, where the forking thread is the only one: a cell that another thread of the
 * parent had claimed but not filled would never be, and every event behind it would stay unread.
 * Its range is unknown, so it becomes a release of the whole address space (coalesced): a listener
 * drops what it knows, which is right whatever that event was.
 */
void mh_queue_after_fork_child(void)
{
    if (!ring_ready)
        return;
    uint64_t tail = atomic_load(&ring_tail);
    bool filled = false;
    for (uint64_t pos = ring_head; pos != tail; pos++) {
        struct cell *cell = &ring[pos & (RING_SIZE - 1)];
        if (atomic_load_explicit(&cell->seq, memory_order_acquire) == pos + 1)
            continue;
        cell->addr = 0;
        cell->len = UINT64_MAX;
        cell->flags = MEMHOOKS_EVENT_RELEASE | MEMHOOKS_EVENT_COALESCED;
        atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
        filled = true;
    }
    if (filled)
        mark_pending();
}

/* Tests only (see opal_memhooks.h): the cell claimed by memhooks_testing_jam_queue(1). */
static uint64_t jammed_at;
static bool jammed;

int memhooks_testing_jam_queue(int jam)
{
    if (!ring_ready)
        return 0;
    if (jam && !jammed) {
        jammed_at = atomic_fetch_add(&ring_tail, 1); /* a producer that stops after claiming */
        jammed = true;
        return 1;
    }
    if (!jam && jammed) {
        struct cell *cell = &ring[jammed_at & (RING_SIZE - 1)];
        cell->addr = 0;
        cell->len = 0;
        cell->flags = MEMHOOKS_EVENT_RELEASE;
        atomic_store_explicit(&cell->seq, jammed_at + 1, memory_order_release);
        jammed = false;
        mark_pending();
        return 1;
    }
    return 0;
}

int32_t *memhooks_queue_pending_word(void)
{
    return (int32_t *)&pending_word;
}

void mh_queue_start(void)
{
    if (!ring_ready)
        ring_init();
}
