/*
 * The two spans of a cache's index (see struct rc_cache): the release hook reads them without the
 * lock and passes over every release outside both. They grow before a registration (so the hook
 * sees releases of memory being registered) and shrink after removals, at the end of an operation.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcache_internal.h"

/*
 * Where the two spans divide, on x86-64 Linux: executables and their brk heap sit below (PIE at
 * 0x55..-0x56.., others lower), the mmap area below the stack, near 0x7f... A wrong guess costs
 * precision only: between them the spans always cover every region.
 */
#define SPAN_SPLIT ((uintptr_t)0x600000000000)

static int span_of(uintptr_t start)
{
    return start >= SPAN_SPLIT;
}

static void span_set(struct rc_cache *c, int which, uintptr_t start, uintptr_t end)
{
    atomic_store(&c->span_start[which], start);
    atomic_store(&c->span_end[which], end);
}

void rc_span_clear(struct rc_cache *c)
{
    span_set(c, 0, UINTPTR_MAX, 0);
    span_set(c, 1, UINTPTR_MAX, 0);
}

/* The region with the smallest start >= addr, or NULL. */
static struct rc_region *index_ceiling(struct rc_region *node, uintptr_t addr)
{
    struct rc_region *best = NULL;
    while (node) {
        if (node->start >= addr) {
            best = node;
            node = node->left;
        } else {
            node = node->right;
        }
    }
    return best;
}

void rc_span_refresh_stale(struct rc_cache *c)
{
    c->span_stale = false;
    struct rc_region *low_first = index_ceiling(c->root, 0);
    struct rc_region *low_last = rc_index_below(c->root, SPAN_SPLIT);
    struct rc_region *high_first = index_ceiling(c->root, SPAN_SPLIT);
    struct rc_region *high_last = rc_index_floor(c->root, UINTPTR_MAX);
    if (low_last)
        span_set(c, 0, low_first->start, low_last->end);
    else
        span_set(c, 0, UINTPTR_MAX, 0);
    if (high_first)
        span_set(c, 1, high_first->start, high_last->end);
    else
        span_set(c, 1, UINTPTR_MAX, 0);
}

bool rc_span_touches(struct rc_cache *c, uintptr_t start, uintptr_t end)
{
    for (int which = 0; which < 2; which++) {
        if (end > atomic_load(&c->span_start[which]) && start < atomic_load(&c->span_end[which]))
            return true;
    }
    return false;
}

void rc_index_remove_spanned(struct rc_cache *c, struct rc_region *r)
{
    rc_index_remove(&c->root, r);
    c->span_stale = true;
}

void rc_span_widen(struct rc_cache *c, uintptr_t start, uintptr_t end)
{
    int which = span_of(start);
    if (start < atomic_load_explicit(&c->span_start[which], memory_order_relaxed))
        atomic_store(&c->span_start[which], start);
    if (end > atomic_load_explicit(&c->span_end[which], memory_order_relaxed))
        atomic_store(&c->span_end[which], end);
}
