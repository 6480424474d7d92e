/*
 * Front words (see rcache.h): a region's word is bound under the cache lock, and closed, under the
 * lock too, whenever the region leaves the index, is evicted, or the word is rebound. TypeScript
 * only adds to an open word; only lock holders subtract from a word or close it.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcache_internal.h"

static void front_unbind(struct rc_cache *c, struct rc_region *r)
{
    c->front_owner[r->front] = NULL;
    r->front = -1;
}

/* A region on the idle list that TypeScript had taken leaves the list (it is in use). */
void rc_front_close(struct rc_cache *c, struct rc_region *r)
{
    if (r->front < 0)
        return;
    uint32_t word =
        atomic_exchange_explicit(&c->front[r->front], RCACHE_FRONT_CLOSED, memory_order_acq_rel);
    r->holders += word & RCACHE_FRONT_HOLDS;
    front_unbind(c, r);
    if (r->holders && (r->flags & RC_REGION_IDLE)) {
        rc_list_remove(&c->idle, r);
        r->flags &= (uint8_t)~RC_REGION_IDLE;
    }
}

bool rc_front_close_unheld(struct rc_cache *c, struct rc_region *r)
{
    if (r->front < 0)
        return true;
    uint32_t unheld = 0;
    if (!atomic_compare_exchange_strong_explicit(&c->front[r->front], &unheld, RCACHE_FRONT_CLOSED,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    front_unbind(c, r);
    return true;
}

bool rc_front_release(struct rc_cache *c, struct rc_region *r)
{
    if (r->front < 0)
        return false;
    _Atomic uint32_t *word = &c->front[r->front];
    uint32_t value = atomic_load_explicit(word, memory_order_acquire);
    /* Only TypeScript adds (and only to an open word); only lock holders subtract or close. */
    while (value & RCACHE_FRONT_HOLDS) {
        if (atomic_compare_exchange_weak_explicit(word, &value, value - 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
    return false;
}

void rc_front_bind(struct rc_cache *c, struct rc_region *r, int32_t index)
{
    struct rc_region *previous = c->front_owner[index];
    if (previous)
        rc_front_close(c, previous);
    c->front_owner[index] = r;
    r->front = index;
    atomic_store_explicit(&c->front[index], 0, memory_order_release);
}
