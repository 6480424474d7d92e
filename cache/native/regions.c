/*
 * A region's life cycle, under the cache lock: registered on a miss (merged with its neighbours),
 * held and released, retired from the index when its memory goes or a newer region covers it,
 * evicted in LRU order, deregistered, and freed outside any hook.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "rcache_internal.h"

void rc_deregister(struct rc_cache *c, struct rc_region *r, enum rcache_stat path, bool count_path)
{
    rc_front_close(c, r); /* already closed on every path; a region dies with its word closed */
    size_t length = r->end - r->start;
    if (c->registrar.dereg(c->registrar.context, r->mr, length) != 0)
        c->stats[RCACHE_STAT_DEREGISTRATION_FAILURES]++;
    c->stats[RCACHE_STAT_DEREGISTRATIONS]++;
    if (count_path)
        c->stats[path]++;
    c->stats[RCACHE_STAT_REGIONS]--;
    c->stats[RCACHE_STAT_BYTES] -= length;
}

/* Freed at the next drain outside a hook: hooks never call free. */
void rc_bury(struct rc_cache *c, struct rc_region *r)
{
    r->next = c->graveyard;
    c->graveyard = r;
}

void rc_free_graveyard(struct rc_cache *c)
{
    while (c->graveyard) {
        struct rc_region *r = c->graveyard;
        c->graveyard = r->next;
        free(r); /* may trim the heap and re-enter the hook, which defers: we hold the lock */
    }
}

/*
 * Drops an unheld region completely, unless TypeScript has taken it through its front word since
 * it became idle: then it only leaves the list (it is in use; its release puts it back).
 */
void rc_discard_idle(struct rc_cache *c, struct rc_region *r, enum rcache_stat path,
                     bool count_path)
{
    if (r->flags & RC_REGION_IDLE) {
        rc_list_remove(&c->idle, r);
        r->flags &= (uint8_t)~RC_REGION_IDLE;
    }
    if (r->holders || !rc_front_close_unheld(c, r))
        return;
    if (c->last == r)
        c->last = NULL;
    rc_index_remove_spanned(c, r); /* idle regions are always indexed */
    c->stats[RCACHE_STAT_INDEXED]--;
    rc_deregister(c, r, path, count_path);
    rc_bury(c, r);
}

/*
 * Takes `r` out of the index: no lookup returns it again. An idle region is deregistered now; a
 * held one stays registered until its last holder releases it (rc_put_region).
 */
static void retire(struct rc_cache *c, struct rc_region *r, enum rcache_stat path, bool count_path)
{
    rc_front_close(c, r); /* from here on no hold can be taken without a lookup */
    if (r->holders == 0) {
        rc_discard_idle(c, r, path, count_path);
    } else {
        if (c->last == r)
            c->last = NULL;
        rc_index_remove_spanned(c, r);
        c->stats[RCACHE_STAT_INDEXED]--;
        rc_list_append(&c->retired, r);
        atomic_fetch_add_explicit(&c->releases.retired, 1, memory_order_relaxed);
    }
}

/* Retires every indexed region overlapping [start, end); returns how many. */
static unsigned retire_overlapping(struct rc_cache *c, uintptr_t start, uintptr_t end,
                                   enum rcache_stat path, bool count_path)
{
    unsigned retired = 0;
    for (;;) {
        /* Regions do not overlap, so those overlapping the range are consecutive and end with the
         * last one starting below `end`. */
        struct rc_region *r = rc_index_below(c->root, end);
        if (!r || r->end <= start)
            return retired;
        retire(c, r, path, count_path);
        retired++;
    }
}

void rc_invalidate_range(struct rc_cache *c, uintptr_t start, uintptr_t end, enum rcache_stat path)
{
    c->stats[RCACHE_STAT_INVALIDATIONS] += retire_overlapping(c, start, end, path, true);
}

void rc_invalidate_everything(struct rc_cache *c, enum rcache_stat path)
{
    while (c->root) {
        retire(c, c->root, path, true);
        c->stats[RCACHE_STAT_INVALIDATIONS]++;
    }
}

void rc_evict_to_limits(struct rc_cache *c)
{
    while (c->idle.oldest && ((c->max_regions && c->stats[RCACHE_STAT_REGIONS] > c->max_regions) ||
                              (c->max_bytes && c->stats[RCACHE_STAT_BYTES] > c->max_bytes)))
        rc_discard_idle(c, c->idle.oldest, RCACHE_STAT_EVICTIONS, true);
}

void rc_evict_all_idle(struct rc_cache *c, bool count_evictions)
{
    while (c->idle.oldest)
        rc_discard_idle(c, c->idle.oldest, RCACHE_STAT_EVICTIONS, count_evictions);
}

/* Deregistering here is allowed: callers are cache operations and the direct path of the release
 * hook. */
int rc_put_region(struct rc_cache *c, struct rc_region *r)
{
    if (!r)
        return RCACHE_ERR_STATE;
    /* Which count the release comes off does not matter, only the sum; `holders` first, so a
     * TypeScript add racing with this never meets a front word that is about to drop. */
    if (r->holders)
        r->holders--;
    else if (!rc_front_release(c, r))
        return RCACHE_ERR_STATE;
    if (rc_all_holders(c, r) == 0) {
        if (r->flags & RC_REGION_INDEXED) {
            if (r->flags & RC_REGION_IDLE)
                rc_list_remove(&c->idle, r); /* back to newest */
            rc_list_append(&c->idle, r);
            r->flags |= RC_REGION_IDLE;
            rc_evict_to_limits(c);
        } else {
            /* Retired while held (its memory was released, or a newer region replaced it). */
            rc_list_remove(&c->retired, r);
            atomic_fetch_sub_explicit(&c->releases.retired, 1, memory_order_relaxed);
            rc_deregister(c, r, RCACHE_STAT_DEREGISTRATIONS, false);
            rc_bury(c, r);
        }
    }
    return 0;
}

/* Registers [start, end) with the registrar; on a locked-memory limit evicts every idle region
 * and retries once. */
static int register_with_retry(struct rc_cache *c, uintptr_t start, uintptr_t end, uint32_t access,
                               struct rcache_registration *out)
{
    int err = c->registrar.reg(c->registrar.context, start, end - start, access, out);
    if ((err == ENOMEM || err == EAGAIN) && c->idle.oldest) {
        c->stats[RCACHE_STAT_LIMIT_RETRIES]++;
        rc_evict_all_idle(c, true);
        err = c->registrar.reg(c->registrar.context, start, end - start, access, out);
    }
    return err;
}

int rc_register_range(struct rc_cache *c, uintptr_t start, uintptr_t end, uint32_t access,
                      struct rc_region **out)
{
    /*
     * With merging, grow the range over indexed regions of the same access that overlap or touch
     * it. Their bytes are mapped (a release would have removed them) and were asked for with this
     * same access, so the union neither spans unmapped memory nor exposes bytes nobody asked to
     * expose.
     */
    uintptr_t union_start = start, union_end = end;
    if (c->merge) {
        for (struct rc_region *r = rc_index_floor(c->root, end); r && r->end >= start;
             r = rc_index_below(c->root, r->start)) {
            if (r->access != access)
                continue;
            if (r->start < union_start)
                union_start = r->start;
            if (r->end > union_end)
                union_end = r->end;
        }
    }
    struct rc_region *region = malloc(sizeof *region);
    if (!region)
        return RCACHE_ERR_NO_MEMORY;
    rc_span_widen(c, union_start, union_end); /* the union covers the exact range's fallback too */
    struct rcache_registration reg;
    int err = -1;
    if (union_start != start || union_end != end) {
        err = c->registrar.reg(c->registrar.context, union_start, union_end - union_start, access,
                               &reg);
        /* The union can fail where the exact range would not (protections differ, a region's
         * memory was released on a thread whose release is still pending): fall back to the exact
         * range. */
        if (err) {
            union_start = start;
            union_end = end;
        }
    }
    if (err)
        err = register_with_retry(c, start, end, access, &reg);
    if (err) {
        free(region);
        c->result.error = err;
        return err == ENOMEM || err == EAGAIN ? RCACHE_ERR_LIMIT : RCACHE_ERR_REGISTER;
    }
    /* Whatever overlaps the new region leaves the index, so regions stay disjoint. Different
     * access overlapping: retired too, never widened. */
    retire_overlapping(c, union_start, union_end, RCACHE_STAT_DEREGISTRATIONS, false);
    if (union_start != start || union_end != end)
        c->stats[RCACHE_STAT_MERGES]++;
    *region = (struct rc_region){.start = union_start,
                                 .end = union_end,
                                 .mr = reg.mr,
                                 .lkey = reg.lkey,
                                 .rkey = reg.rkey,
                                 .access = access,
                                 .front = -1};
    rc_index_insert(&c->root, region);
    c->stats[RCACHE_STAT_INDEXED]++;
    c->stats[RCACHE_STAT_REGISTRATIONS]++;
    c->stats[RCACHE_STAT_REGIONS]++;
    c->stats[RCACHE_STAT_BYTES] += union_end - union_start;
    rc_hold(c, region);
    c->last = region;
    rc_evict_to_limits(c);
    *out = region;
    return RCACHE_MISS;
}
