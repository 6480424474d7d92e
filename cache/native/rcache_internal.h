/*
 * The registration cache's private structures and the functions its files share (rcache.h is the
 * interface). Nothing here is for callers of the library; the tests' native library
 * (tests/native/rcache_testing.c) reaches the few symbols marked RCACHE_TESTABLE.
 *
 * Files, one job each:
 *   rcache.c       the API: slots, create/destroy, get/put, stats, and entering/leaving a cache
 *   regions.c      a region's life cycle: registration on a miss (merging), holds, retirement,
 *                  invalidation, eviction, deregistration
 *   front_words.c  binding, closing and releasing front words (rcache.h)
 *   spans.c        the two spans the release hook filters releases with
 *   deferred.c     applying what was deferred: the release queue TypeScript fills, the pending ring
 *                  release hooks fill
 *   release_hook.c the memory hooks' release callback, and installing it
 *   interception.c the check that the memory hooks' patches are still in place
 *   fork.c         fork handlers
 *   registrar_verbs.c, region_index.c, pending_ring.c, verbs_text.c: see their headers
 *
 * Locking: one mutex per cache. Every operation drains the pending ring right after taking the
 * lock and again right before dropping it, so a release deferred while the operation ran (by
 * another thread's allocator, or by this thread re-entering through malloc/free) is applied before
 * anyone can look the range up again. `owner` records the thread holding the lock so the hook can
 * tell "my own thread is inside this cache" (defer) from "another thread is" (a direct release may
 * wait). Every function below that takes a struct rc_cache * expects its lock held.
 */
#ifndef RCACHE_INTERNAL_H
#define RCACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pending_ring.h"
#include "rcache.h"
#include "region_index.h"

struct rc_cache {
    pthread_mutex_t lock;
    _Atomic uintptr_t owner; /* pthread_self() of the lock holder, 0 when unlocked */
    _Atomic int live;        /* read by the hook without the lock; changed under it */
    struct rcache_registrar registrar;
    uint64_t max_regions, max_bytes; /* 0: unbounded */
    bool merge;
    struct rc_region *root;
    /* Two spans, from the lowest start to the highest end of the indexed regions that start below
     * RC_SPAN_SPLIT (the heap) and of those that start above it (the mmap area); empty: start >
     * end. The hook reads them without the lock to pass over releases no region can overlap: most
     * releases in a process concern other memory, and each pushed one costs a ring cell (see
     * release_hook.c). One span over a heap region and an mmap-area region would cover nearly
     * every mapping between them. */
    _Atomic uintptr_t span_start[2], span_end[2];
    bool span_stale;                    /* a region left the index since the spans were computed */
    _Atomic uint64_t releases_examined; /* releases the hook did not pass over (statistics) */
    /* rc_pending_claimed() when a stuck ring cell last made the drain invalidate everything: the
     * ranges claimed up to then are covered (see deferred.c). */
    size_t stuck_covered;
    bool stuck_covered_valid;
    struct rc_region *last; /* the region the last lookup returned, while indexed: reuse of one
                             * buffer skips the tree walk */
    struct rc_list idle;    /* oldest first: the eviction order */
    struct rc_list retired; /* held regions no longer in the index (their memory was released, or
                             * a newer region replaced them): deregistered at their last release */
    struct rc_region *graveyard; /* deregistered, to be freed outside any hook */
    /* Front words (see rcache.h) and the region each is bound to; static so that no hook
     * allocates and TypeScript's view of the words never moves. */
    _Atomic uint32_t front[RCACHE_FRONT_SLOTS];
    struct rc_region *front_owner[RCACHE_FRONT_SLOTS];
    uint64_t stats[RCACHE_STAT_COUNT];
    struct rcache_result result;
    struct rcache_release_queue releases;
    struct rc_pending_ring pending;
};

/* The slots (rcache.c). A slot is never freed: the hook may read any of them at any time. */
RCACHE_TESTABLE extern struct rc_cache rc_caches[RCACHE_MAX_CACHES];
/*
 * Bit i set while slot i is live (set after its live word, cleared after): the release hook reads
 * this one word instead of 64 live words on 64 cache lines. A slot's own live word still decides.
 */
extern _Atomic uint64_t rc_live_slots;
_Static_assert(RCACHE_MAX_CACHES <= 64, "rc_live_slots has a bit per slot");
/* Taken by rcache_create, and by fork before every cache lock. */
extern pthread_mutex_t rc_create_lock;

static inline void rc_lock(struct rc_cache *c)
{
    pthread_mutex_lock(&c->lock);
    atomic_store_explicit(&c->owner, (uintptr_t)pthread_self(), memory_order_relaxed);
}

static inline void rc_unlock(struct rc_cache *c)
{
    atomic_store_explicit(&c->owner, 0, memory_order_relaxed);
    pthread_mutex_unlock(&c->lock);
}

/* ---- rcache.c ---------------------------------------------------------------------------- */

/* The cache in `slot`, locked, with deferred releases applied; NULL when there is none. */
RCACHE_TESTABLE struct rc_cache *rc_enter(int slot);
/* Applies what was deferred meanwhile, shrinks the spans, and unlocks. */
RCACHE_TESTABLE void rc_leave(struct rc_cache *c);

/* ---- fork.c ------------------------------------------------------------------------------ */

/* Installs the fork handlers (once, from the slots' initialisation). */
void rc_fork_handlers_install(void);

/* ---- spans.c ----------------------------------------------------------------------------- */

void rc_span_clear(struct rc_cache *c);
/* Before registering [start, end): from then on the hook sees releases of that memory. */
void rc_span_widen(struct rc_cache *c, uintptr_t start, uintptr_t end);
/* Shrinks the spans to the index after removals (never leaves a region outside them). */
void rc_span_refresh_stale(struct rc_cache *c);
static inline void rc_span_refresh(struct rc_cache *c)
{
    if (c->span_stale)
        rc_span_refresh_stale(c);
}
/* Whether [start, end) overlaps a span: only then can it concern a region. Without the lock. */
bool rc_span_touches(struct rc_cache *c, uintptr_t start, uintptr_t end);
/* Takes `r` out of the tree; the spans shrink at the end of the operation (rc_span_refresh). */
void rc_index_remove_spanned(struct rc_cache *c, struct rc_region *r);

/* ---- front_words.c ----------------------------------------------------------------------- */

/* Holds taken through `r`'s front word and not yet released. */
static inline uint32_t rc_front_holds(struct rc_cache *c, const struct rc_region *r)
{
    if (r->front < 0)
        return 0;
    return atomic_load_explicit(&c->front[r->front], memory_order_acquire) & RCACHE_FRONT_HOLDS;
}

static inline uint32_t rc_all_holders(struct rc_cache *c, const struct rc_region *r)
{
    return r->holders + rc_front_holds(c, r);
}

/* Closes `r`'s front word, whatever it counts: the holds it counted become ordinary holders. */
void rc_front_close(struct rc_cache *c, struct rc_region *r);
/* Closes `r`'s front word if it counts no hold; false when TypeScript holds the region. */
bool rc_front_close_unheld(struct rc_cache *c, struct rc_region *r);
/* Takes one released hold off `r`'s front word; false when it counts none. */
bool rc_front_release(struct rc_cache *c, struct rc_region *r);
/* Binds front word `index` to `r`, closing it for the region it stood for before. */
void rc_front_bind(struct rc_cache *c, struct rc_region *r, int32_t index);

/* ---- regions.c --------------------------------------------------------------------------- */

/* Held regions are on no list (only retired ones are), except those TypeScript took through a
 * front word while they were idle. */
static inline void rc_hold(struct rc_cache *c, struct rc_region *r)
{
    r->holders++;
    if (r->flags & RC_REGION_IDLE) {
        rc_list_remove(&c->idle, r);
        r->flags &= (uint8_t)~RC_REGION_IDLE;
    }
}

/* Whether a region registered with `have` serves a request for `want`: see
 * RCACHE_PERMISSION_ACCESS. */
static inline bool rc_access_serves(uint32_t have, uint32_t want)
{
    return (have & want) == want &&
           (have & ~RCACHE_PERMISSION_ACCESS) == (want & ~RCACHE_PERMISSION_ACCESS);
}

/* Registers [start, end) (or its union with neighbours, when merging), held once, into *out;
 * returns RCACHE_MISS or a negative RCACHE_ERR_*, with errno in c->result.error. */
int rc_register_range(struct rc_cache *c, uintptr_t start, uintptr_t end, uint32_t access,
                      struct rc_region **out);
/* Deregisters `r`; when count_path, `path` is the stat that says why it happened now. */
void rc_deregister(struct rc_cache *c, struct rc_region *r, enum rcache_stat path, bool count_path);
/* Queues a deregistered region's memory to be freed outside any hook. */
void rc_bury(struct rc_cache *c, struct rc_region *r);
void rc_free_graveyard(struct rc_cache *c);
/* Drops an unheld region completely (unless TypeScript took it through its front word). */
void rc_discard_idle(struct rc_cache *c, struct rc_region *r, enum rcache_stat path,
                     bool count_path);
/* Memory in [start, end) was or is being released: every region over it leaves the index. */
void rc_invalidate_range(struct rc_cache *c, uintptr_t start, uintptr_t end, enum rcache_stat path);
void rc_invalidate_everything(struct rc_cache *c, enum rcache_stat path);
void rc_evict_to_limits(struct rc_cache *c);
void rc_evict_all_idle(struct rc_cache *c, bool count_evictions);
/* One holder gives `r` back; 0, or RCACHE_ERR_STATE when it was not held. */
int rc_put_region(struct rc_cache *c, struct rc_region *r);

/* ---- deferred.c -------------------------------------------------------------------------- */

/* Applies the releases TypeScript queued (see struct rcache_release_queue). */
void rc_apply_queued_releases(struct rc_cache *c);
static inline void rc_apply_releases(struct rc_cache *c)
{
    if (atomic_load_explicit(&c->releases.head, memory_order_relaxed) !=
        atomic_load_explicit(&c->releases.tail, memory_order_acquire))
        rc_apply_queued_releases(c);
}

/* Applies the releases the hook deferred (see deferred.c); `in_hook`: called from the hook. */
void rc_drain_deferred(struct rc_cache *c, bool in_hook);
static inline void rc_drain_pending(struct rc_cache *c, bool in_hook)
{
    if (!atomic_load_explicit(&c->releases.deferred, memory_order_relaxed) &&
        !rc_pending_maybe(&c->pending) && !c->graveyard)
        return; /* the hit path's usual case */
    rc_drain_deferred(c, in_hook);
}

/* ---- release_hook.c ---------------------------------------------------------------------- */

/* Installs the hooks if needed and registers the release callback; 0 or a negative RCACHE_ERR_*. */
int rc_ensure_hooks(void);
int rc_hooks_level(void);
int rc_hooks_status(void);
const char *rc_hooks_missing(void);

/* ---- registrar_verbs.c ------------------------------------------------------------------- */

/* ibv_reg_mr/ibv_dereg_mr over the protection domain `pd` (a struct ibv_pd *). */
struct rcache_registrar rc_verbs_registrar(void *pd);

/*
 * Other interceptors (interception.c). Called by every operation before it takes its cache's lock:
 * verifies the memory hooks' entry points and, after a loss (events may have been missed),
 * invalidates every region of every live cache before the hits without a native call may trust
 * the entries again. rc_unwatched(): no source sees every release now, so a cache operation
 * invalidates everything on entering and leaving (every get misses; its region is deregistered
 * by its release).
 */
void rc_check_interception(void);
bool rc_unwatched(void);

#endif /* RCACHE_INTERNAL_H */
