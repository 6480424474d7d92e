/*
 * The event queues the TypeScript side drains: one bounded multi-producer, single-consumer ring per
 * subscriber. Each consumer (a JavaScript isolate: the main thread, each Worker) takes its own
 * subscriber, so what one consumer drains, enables or leaves behind never touches another's events.
 *
 * Producers are hooks on any thread; they never block, never allocate and take no lock. An event
 * goes to every subscriber that records its kind. When a subscriber's ring is full the event is
 * folded into that subscriber's overflow range for its kind (release, alloc), which covers every
 * folded event; the consumer gets it after the ring's events as one event flagged
 * MEMHOOKS_EVENT_COALESCED. Nothing is lost, and memory stays bounded even for a subscriber that
 * nobody drains any more. Each overflow range is one 16-byte word updated with cmpxchg16b, so its
 * two ends always belong together.
 *
 * Subscribe, enable and unsubscribe run under the API lock (lifecycle.c). A subscriber's state is
 * reset only while no producer can be writing to it: giving a subscriber back clears its bits in
 * `recording`, then waits for every push that may have read them (wait_for_pushes).
 */
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>

#include "memhooks_internal.h"
#include "range_ring.h"

#define RING_SIZE 4096 /* power of two */

/* Overflow ranges as {low address, end address}; empty when low >= end. */
typedef unsigned __int128 range128;

struct subscriber {
    /* Its events, as {addr, len, flags} (ffi/native/range_ring.h); the consumer is the drain. */
    struct range_ring ring;
    struct range_ring_cell cells[RING_SIZE];
    /* Written by producers: what overflowed. */
    _Alignas(64) range128 overflow[2];
    _Atomic uint32_t overflow_from_program[2]; /* any folded event not from the allocator */
    /* Nonzero when something may be waiting; read by TypeScript, so an int32 on its own line. */
    _Alignas(64) _Atomic int32_t pending;
    /* Set under the API lock; drain and the test entry point read it without. */
    _Alignas(64) _Atomic bool taken;
    /* Guarded by the API lock. */
    int kinds;  /* MEMHOOKS_QUEUE_* bits */
    long owner; /* thread that subscribed: once it has ended, the slot may be taken back */
    /* Tests only: the cell claimed by memhooks_testing_jam_queue(s, 1). */
    uint64_t jammed_at;
    bool jammed;
};

static struct subscriber subscribers[MEMHOOKS_QUEUE_SUBSCRIBERS];

/* Bit i of recording[kind] (0 release, 1 alloc): subscriber i records that kind. */
static _Atomic uint32_t recording[2];

/*
 * Pushes in progress, counted in the counter the epoch points to (as dispatch.c counts
 * dispatches): wait_for_pushes() flips the epoch so that new pushes cannot keep the counter it
 * waits for from draining.
 */
static _Atomic unsigned push_epoch;
static _Atomic long pushing[2];

static long fork_tid; /* the thread calling fork(), recorded under the API lock */

static const range128 EMPTY_RANGE = (range128)UINT64_MAX;

static long current_tid(void)
{
    return raw_syscall(SYS_gettid, 0, 0, 0);
}

static bool thread_alive(long tid)
{
    long pid = raw_syscall(SYS_getpid, 0, 0, 0);
    return raw_syscall(SYS_tgkill, pid, tid, 0) != -ESRCH;
}

static struct subscriber *taken_subscriber(int id)
{
    if (id < 0 || id >= MEMHOOKS_QUEUE_SUBSCRIBERS)
        return NULL;
    struct subscriber *s = &subscribers[id];
    return atomic_load_explicit(&s->taken, memory_order_acquire) ? s : NULL;
}

static void fold_overflow(struct subscriber *s, int kind, uint64_t addr, uint64_t len,
                          uint32_t flags)
{
    /*
     * Marked before the range grows (the compare-and-swap is a full barrier): a consumer that takes
     * the range sees the mark too. A mark left over belongs to the next range, which then says
     * "from the program", the cautious reading.
     */
    if (!(flags & MEMHOOKS_EVENT_FROM_ALLOC))
        atomic_store(&s->overflow_from_program[kind], 1);
    /* A torn first read only makes the first compare-and-swap fail and return the real value. */
    range128 old = *(volatile range128 *)&s->overflow[kind];
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
        range128 seen = __sync_val_compare_and_swap(&s->overflow[kind], old, update);
        if (seen == old)
            break;
        old = seen;
    }
    atomic_fetch_add_explicit(&mh_stat_coalesced, 1, memory_order_relaxed);
}

/* One subscriber's share of a push: a cell of its ring, or its overflow range when it is full. */
static void push_one(struct subscriber *s, int kind, uint64_t addr, uint64_t len, uint32_t flags)
{
    struct range_ring_entry entry = {.addr = addr, .len = len, .flags = flags};
    if (!range_ring_push(&s->ring, &entry))
        fold_overflow(s, kind, addr, len, flags);
}

/*
 * Why a consumer never misses an event and never sleeps on one (the store-buffer pattern, with a
 * sequentially consistent fence on each side): the producer publishes its cell or range, fences,
 * then reads the pending word; the drain clears the word, fences, then reads the cells and ranges.
 * Whichever fence comes first in their single total order, either the drain sees the event or the
 * producer sees the cleared word and sets it again.
 */
static void mark_pending(struct subscriber *s)
{
    /* Load first: a store on every event would bounce the cache line between threads. */
    if (!atomic_load_explicit(&s->pending, memory_order_relaxed))
        atomic_store_explicit(&s->pending, 1, memory_order_relaxed);
}

void mh_queue_push(uintptr_t addr, size_t len, uint32_t flags)
{
    int kind = (flags & MEMHOOKS_EVENT_ALLOC) ? 1 : 0;
    /* No subscriber records this kind: nothing to write, so nothing for anyone to wait for. */
    if (!atomic_load_explicit(&recording[kind], memory_order_relaxed))
        return;
    /*
     * Counted before the bits are read again (both sequentially consistent): a subscriber being
     * given back either is not in `mask`, or its unsubscribe waits until this push has left.
     */
    unsigned parity = atomic_load(&push_epoch) & 1;
    atomic_fetch_add(&pushing[parity], 1);
    uint32_t mask = atomic_load(&recording[kind]);
    if (mask)
        atomic_fetch_add_explicit(&mh_stat_queued, 1, memory_order_relaxed);
    for (uint32_t m = mask; m; m &= m - 1)
        push_one(&subscribers[__builtin_ctz(m)], kind, addr, len, flags);
    atomic_thread_fence(memory_order_seq_cst); /* see mark_pending */
    for (uint32_t m = mask; m; m &= m - 1)
        mark_pending(&subscribers[__builtin_ctz(m)]);
    /* Release: what this push wrote comes before an unsubscribe that sees the count drop. */
    atomic_fetch_sub(&pushing[parity], 1);
}

/*
 * Returns once every push that may have read `recording` before the caller changed it has ended.
 * Each counter is seen at zero at some instant after the change, so every push counted in it then
 * has ended; a push counted later read `recording` after the change (everything here is
 * sequentially consistent). Pushes are short and never wait for anything, so neither does this.
 */
static void wait_for_pushes(void)
{
    for (unsigned parity = 0; parity < 2; parity++) {
        atomic_store(&push_epoch, parity + 1);
        while (atomic_load(&pushing[parity]) > 0)
            sched_yield();
    }
}

static bool take_overflow(struct subscriber *s, int kind, struct memhooks_event *out)
{
    range128 got = __sync_lock_test_and_set(&s->overflow[kind], EMPTY_RANGE);
    uint64_t lo = (uint64_t)got, end = (uint64_t)(got >> 64);
    if (lo >= end)
        return false;
    bool from_program = atomic_exchange(&s->overflow_from_program[kind], 0);
    out->addr = lo;
    out->len = end - lo;
    out->flags = (kind ? MEMHOOKS_EVENT_ALLOC : MEMHOOKS_EVENT_RELEASE) | MEMHOOKS_EVENT_COALESCED |
                 (from_program ? 0 : MEMHOOKS_EVENT_FROM_ALLOC);
    out->reserved = 0;
    return true;
}

size_t memhooks_queue_drain(int subscriber, struct memhooks_event *out, size_t max)
{
    struct subscriber *s = taken_subscriber(subscriber);
    if (!s || !out || max == 0)
        return 0;
    /* Cleared before reading: an event published after the fence sets it again (mark_pending). */
    atomic_store_explicit(&s->pending, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    size_t n = 0;
    struct range_ring_entry entry;
    /* A cell claimed and not yet published ends the batch like an empty ring: the producer's
     * publish comes before its mark_pending, which sets the word again. */
    while (n < max && range_ring_pop(&s->ring, &entry) == RANGE_RING_POPPED) {
        out[n].addr = entry.addr;
        out[n].len = entry.len;
        out[n].flags = entry.flags;
        out[n].reserved = 0;
        n++;
    }
    /* The ring is empty (or out is full): covering ranges of what overflowed come after. */
    for (int kind = 0; kind < 2 && n < max; kind++)
        if (take_overflow(s, kind, &out[n]))
            n++;
    if (n == max)
        atomic_store_explicit(&s->pending, 1, memory_order_relaxed); /* maybe more: call again */
    return n;
}

int32_t *memhooks_queue_pending_word(int subscriber)
{
    struct subscriber *s = taken_subscriber(subscriber);
    return s ? (int32_t *)&s->pending : NULL;
}

/* ---- Subscribers (called with the API lock held) ------------------------------------------ */

/* Stops `bits`' subscribers from being written to; the caller then waits for pushes. */
static void stop_recording(uint32_t bits)
{
    atomic_fetch_and(&recording[0], ~bits);
    atomic_fetch_and(&recording[1], ~bits);
}

/*
 * Subscribers whose subscribing thread has ended are taken back: their consumer is gone (a
 * terminated Worker cannot unsubscribe), nobody reads their events. A thread that still exists
 * keeps its subscribers, even when its consumer has ended too: taking a slot a consumer still reads
 * would lose its events. Returns how many subscribers remain.
 */
static int reclaim_dead(void)
{
    uint32_t dead = 0;
    int live = 0;
    for (int i = 0; i < MEMHOOKS_QUEUE_SUBSCRIBERS; i++) {
        struct subscriber *s = &subscribers[i];
        if (!atomic_load(&s->taken))
            continue;
        if (thread_alive(s->owner))
            live++;
        else
            dead |= 1u << i;
    }
    if (dead) {
        stop_recording(dead);
        wait_for_pushes();
        for (int i = 0; i < MEMHOOKS_QUEUE_SUBSCRIBERS; i++)
            if (dead & (1u << i))
                atomic_store_explicit(&subscribers[i].taken, false, memory_order_release);
    }
    return live;
}

int mh_queue_subscribe(void)
{
    /* Taken back here, not only when every slot is taken: a dead subscriber still costs every
     * event a fold into its covering range. */
    reclaim_dead();
    int id = -1;
    for (int i = 0; i < MEMHOOKS_QUEUE_SUBSCRIBERS && id < 0; i++)
        if (!atomic_load(&subscribers[i].taken))
            id = i;
    if (id < 0)
        return OPAL_ERR_OUT_OF_RESOURCE;
    /* Free, so not in `recording` since a wait_for_pushes(): no producer writes here. */
    struct subscriber *s = &subscribers[id];
    range_ring_init(&s->ring, s->cells, RING_SIZE);
    s->overflow[0] = s->overflow[1] = EMPTY_RANGE;
    atomic_store_explicit(&s->overflow_from_program[0], 0, memory_order_relaxed);
    atomic_store_explicit(&s->overflow_from_program[1], 0, memory_order_relaxed);
    atomic_store_explicit(&s->pending, 0, memory_order_relaxed);
    s->kinds = 0;
    s->owner = current_tid();
    s->jammed = false;
    /* Release: a drain that sees the subscriber taken sees it reset. Producers see the reset
     * through the sequentially consistent update of `recording` in mh_queue_set_kinds. */
    atomic_store_explicit(&s->taken, true, memory_order_release);
    return id;
}

int mh_queue_set_kinds(int subscriber, int kinds)
{
    struct subscriber *s = taken_subscriber(subscriber);
    if (!s)
        return OPAL_ERR_BAD_PARAM;
    s->kinds = kinds;
    uint32_t bit = 1u << subscriber;
    /*
     * No wait when a kind is switched off: a push that read the old bits may still add an event,
     * which the consumer drains like any other.
     */
    if (kinds & MEMHOOKS_QUEUE_RELEASE)
        atomic_fetch_or(&recording[0], bit);
    else
        atomic_fetch_and(&recording[0], ~bit);
    if (kinds & MEMHOOKS_QUEUE_ALLOC)
        atomic_fetch_or(&recording[1], bit);
    else
        atomic_fetch_and(&recording[1], ~bit);
    return OPAL_SUCCESS;
}

int mh_queue_unsubscribe(int subscriber)
{
    struct subscriber *s = taken_subscriber(subscriber);
    if (!s)
        return OPAL_ERR_NOT_FOUND;
    stop_recording(1u << subscriber);
    wait_for_pushes();
    s->kinds = 0;
    atomic_store_explicit(&s->taken, false, memory_order_release);
    return OPAL_SUCCESS;
}

int mh_queue_kinds(void)
{
    return (atomic_load(&recording[0]) ? MEMHOOKS_QUEUE_RELEASE : 0) |
           (atomic_load(&recording[1]) ? MEMHOOKS_QUEUE_ALLOC : 0);
}

int mh_queue_live_subscribers(void)
{
    return reclaim_dead();
}

void mh_queue_before_fork(void)
{
    fork_tid = current_tid();
}

/*
 * In a forked child, where the forking thread is the only one. Pushes of the parent's other
 * threads will never end: their count goes. A cell one of them had claimed but not filled would
 * never be, and every event behind it would stay unread; its range is unknown, so it becomes a
 * release of the whole address space (coalesced): a listener drops what it knows, which is right
 * whatever that event was. The forking thread's subscribers pass to its new thread id; the other
 * threads do not exist here, so their subscribers can be taken back.
 */
void mh_queue_after_fork_child(void)
{
    atomic_store(&pushing[0], 0);
    atomic_store(&pushing[1], 0);
    long self = current_tid();
    for (int i = 0; i < MEMHOOKS_QUEUE_SUBSCRIBERS; i++) {
        struct subscriber *s = &subscribers[i];
        if (!atomic_load(&s->taken))
            continue;
        if (s->owner == fork_tid)
            s->owner = self;
        struct range_ring_entry everything = {
            .addr = 0,
            .len = UINT64_MAX,
            .flags = MEMHOOKS_EVENT_RELEASE | MEMHOOKS_EVENT_COALESCED,
        };
        bool filled = range_ring_publish_claimed(&s->ring, &everything) > 0;
        if (filled)
            atomic_store(&s->pending, 1);
    }
}

/* Tests only (see opal_memhooks.h). */
int memhooks_testing_jam_queue(int subscriber, int jam)
{
    struct subscriber *s = taken_subscriber(subscriber);
    if (!s)
        return 0;
    if (jam && !s->jammed) {
        /* A producer that stops after claiming: only a free cell, as a producer would. */
        if (!range_ring_claim(&s->ring, &s->jammed_at))
            return 0;
        s->jammed = true;
        return 1;
    }
    if (!jam && s->jammed) {
        struct range_ring_entry empty = {.flags = MEMHOOKS_EVENT_RELEASE};
        range_ring_publish(&s->ring, s->jammed_at, &empty);
        s->jammed = false;
        atomic_thread_fence(memory_order_seq_cst);
        mark_pending(s);
        return 1;
    }
    return 0;
}
